//! The HTTP contract, declared once. Each resource module declares its endpoints in one
//! table ([`Resource`]): verb, path template, OpenAPI operation id, the engine's policy
//! operation, and the handler. From that table derive
//! - the dispatch (one matcher for every route: literal paths by one hash lookup),
//! - the 404 for an unknown path and the 405 with `Allow` for a known path's other verbs,
//! - the route label of metrics and access logs (the path template),
//! - the OpenAPI document's paths: path, verb, `operationId`, and for a policy operation
//!   its `security` and `x-required-scope` (read from `policies/scopes.json`, the file
//!   the engine authorizes with).
//!
//! What prose and schemas say about an operation lives beside its module, in
//! `<module>.openapi.json` (`operations` by id, `schemas`), and the document's frame in
//! `openapi.json` here; [`document`] assembles them and refuses an operation documented
//! but not routed, routed but not documented, or whose path parameters differ from its
//! template's. `docs/openapi.json` is that output, checked by a test.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;

use serde_json::{json, Map, Value};
use warp::http::Method;

use super::problem::Problem;
use super::{ApiResult, Body, Ctx};

/// An HTTP verb a route may take (HEAD is answered wherever GET is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn of(method: &Method) -> Option<Verb> {
        Some(match *method {
            Method::GET | Method::HEAD => Verb::Get,
            Method::POST => Verb::Post,
            Method::PUT => Verb::Put,
            Method::PATCH => Verb::Patch,
            Method::DELETE => Verb::Delete,
            _ => return None,
        })
    }

    /// Its name in an `Allow` header.
    fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }

    /// Its key in an OpenAPI path item.
    fn key(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Whatever the operation's documentation says (public, or OAuth client
    /// authentication at the OAuth endpoints).
    Documented,
    /// A Bearer access token carrying the scope this policy operation requires. The
    /// engine checks it (embedders go through the same check); the contract publishes it.
    Policy(&'static str),
}

/// What a handler receives besides the request context.
pub struct Req {
    params: Vec<String>,
    query: String,
    body: Body,
}

impl Req {
    pub(super) fn new(params: Vec<String>, query: String, body: Body) -> Req {
        Req { params, query, body }
    }

    /// The `i`th path parameter of the route's template, as sent.
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or_default()
    }

    /// The `i`th path parameter, an id (a refusal names `field`).
    pub fn id(&self, i: usize, field: &str) -> Result<uuid::Uuid, Problem> {
        super::parse_id(field, self.param(i))
    }

    /// The query string parsed (a refusal names the parameter at fault).
    pub fn query_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problem> {
        super::parse_query(&self.query)
    }

    pub fn body(&self) -> &Body {
        &self.body
    }
}

pub type Reply = Pin<Box<dyn Future<Output = ApiResult> + Send>>;
pub type Handler = fn(Ctx, Req) -> Reply;

/// One endpoint.
pub struct Route {
    pub verb: Verb,
    /// The path template: `{name}` is one segment; with `tail`, the last takes the rest.
    pub path: &'static str,
    /// Its OpenAPI `operationId`, the key of its documentation.
    pub operation: &'static str,
    pub access: Access,
    pub handler: Handler,
    pub tail: bool,
}

/// A resource module's routes and its OpenAPI fragment.
pub struct Resource {
    pub routes: &'static [Route],
    pub openapi: &'static str,
}

/// Declare a route:
/// `route!(GET "/api/v1/agents/{id}", "getAgent", Policy("agents.get") => get)`.
/// The handler is an `async fn(Ctx, Req) -> ApiResult`.
macro_rules! route {
    (@verb GET) => { $crate::http::route::Verb::Get };
    (@verb POST) => { $crate::http::route::Verb::Post };
    (@verb PUT) => { $crate::http::route::Verb::Put };
    (@verb PATCH) => { $crate::http::route::Verb::Patch };
    (@verb DELETE) => { $crate::http::route::Verb::Delete };
    (@access Documented) => { $crate::http::route::Access::Documented };
    (@access Policy($op:literal)) => { $crate::http::route::Access::Policy($op) };
    (@build $tail:literal, $verb:ident $path:literal, $op:literal, $access:ident $(($policy:literal))? => $handler:path) => {
        $crate::http::route::Route {
            verb: route!(@verb $verb),
            path: $path,
            operation: $op,
            access: route!(@access $access $(($policy))?),
            handler: |ctx, req| Box::pin($handler(ctx, req)),
            tail: $tail,
        }
    };
    // The template's last parameter takes the rest of the path, slashes included.
    (tail $($rest:tt)+) => { route!(@build true, $($rest)+) };
    ($($rest:tt)+) => { route!(@build false, $($rest)+) };
}
pub(crate) use route;

/// One path template and the routes at it.
struct Path {
    template: &'static str,
    segments: Vec<&'static str>,
    tail: bool,
    routes: Vec<&'static Route>,
}

impl Path {
    fn literal_count(&self) -> usize {
        self.segments.iter().filter(|s| !s.starts_with('{')).count()
    }

    /// The path parameters of `parts` if they fit this template.
    fn fit(&self, parts: &[&str]) -> Option<Vec<String>> {
        let n = self.segments.len();
        if parts.len() < n || (parts.len() > n && !self.tail) {
            return None;
        }
        let mut params = Vec::new();
        for (i, (t, p)) in self.segments.iter().zip(parts).enumerate() {
            if t.starts_with('{') {
                if p.is_empty() {
                    return None;
                }
                if self.tail && i == n - 1 {
                    params.push(parts[i..].join("/"));
                } else {
                    params.push((*p).to_string());
                }
            } else if t != p {
                return None;
            }
        }
        Some(params)
    }

    /// Its verbs for an `Allow` header: sorted, HEAD wherever GET.
    fn allow(&self) -> String {
        let mut verbs: BTreeSet<&str> = self.routes.iter().map(|r| r.verb.name()).collect();
        if verbs.contains("GET") {
            verbs.insert("HEAD");
        }
        verbs.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// A request's route and its path parameters.
pub struct Found {
    pub route: &'static Route,
    pub label: &'static str,
    pub params: Vec<String>,
}

/// Why no route took a request.
pub enum Miss {
    /// No route has the path.
    Path,
    /// The path exists with these verbs only (an `Allow` value).
    Verb(String),
}

/// The label of a request that no route has.
pub const UNMATCHED: &str = "unmatched";

/// Every route, by path template.
pub struct Table {
    paths: Vec<Path>,
    /// Templates without parameters, by path: most requests (the token endpoint above
    /// all) are one hash lookup.
    literal: HashMap<&'static str, usize>,
}

impl Table {
    /// Build the table; two routes with one verb and path are a programming error,
    /// refused here (and by a test).
    pub fn new(resources: &[&'static Resource]) -> Result<Table, String> {
        let mut paths: Vec<Path> = Vec::new();
        for route in resources.iter().flat_map(|r| r.routes) {
            let at = match paths.iter().position(|p| p.template == route.path) {
                Some(at) => at,
                None => {
                    paths.push(Path {
                        template: route.path,
                        segments: route.path.trim_start_matches('/').split('/').collect(),
                        tail: route.tail,
                        routes: Vec::new(),
                    });
                    paths.len() - 1
                }
            };
            let path = &mut paths[at];
            if path.routes.iter().any(|r| r.verb == route.verb) {
                return Err(format!("{} {} is routed twice", route.verb.name(), route.path));
            }
            if path.tail != route.tail {
                return Err(format!("{}: every route at a path takes its tail, or none does", route.path));
            }
            path.routes.push(route);
        }
        let literal =
            paths.iter().enumerate().filter(|(_, p)| !p.template.contains('{')).map(|(i, p)| (p.template, i)).collect();
        Ok(Table { paths, literal })
    }

    /// The template `path` fits, most literal first (`/audit-events/verify` before
    /// `/audit-events/{id}`), with its parameters.
    fn path(&self, path: &str) -> Option<(&Path, Vec<String>)> {
        if let Some(&i) = self.literal.get(path) {
            return Some((&self.paths[i], Vec::new()));
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.paths.iter().filter_map(|p| p.fit(&parts).map(|params| (p, params))).max_by_key(|(p, _)| p.literal_count())
    }

    /// The route for a request, or why there is none.
    pub fn find(&self, method: &Method, path: &str) -> Result<Found, Miss> {
        let (at, params) = self.path(path).ok_or(Miss::Path)?;
        let verb = Verb::of(method).ok_or_else(|| Miss::Verb(at.allow()))?;
        let route = at.routes.iter().find(|r| r.verb == verb).ok_or_else(|| Miss::Verb(at.allow()))?;
        Ok(Found { route, label: at.template, params })
    }

    /// The endpoint's name for metrics and logs: its path template.
    pub fn label(&self, path: &str) -> &'static str {
        self.path(path).map(|(p, _)| p.template).unwrap_or(UNMATCHED)
    }
}

/// The OpenAPI document: `frame` (info, shared components) with every resource's routes
/// as paths, documented by its fragment, and each policy operation's scope from `policy`
/// (the engine's `policies/scopes.json`).
pub fn document(frame: &str, resources: &[&'static Resource], policy: &str) -> Result<Value, String> {
    let parse = |what: &str, text: &str| -> Result<Value, String> {
        serde_json::from_str(text).map_err(|e| format!("{what}: {e}"))
    };
    let mut doc = parse("openapi.json", frame)?;
    let policy = parse("policies/scopes.json", policy)?;
    let mut paths = Map::new();
    let mut schemas = doc["components"]["schemas"].as_object().cloned().unwrap_or_default();
    for resource in resources {
        let mut fragment = parse("an OpenAPI fragment", resource.openapi)?;
        let mut operations = fragment["operations"].as_object_mut().map(std::mem::take).unwrap_or_default();
        for route in resource.routes {
            let id = route.operation;
            let mut op = operations.remove(id).ok_or_else(|| format!("{id} is routed but not documented"))?;
            let Some(fields) = op.as_object_mut() else { return Err(format!("{id}: not an object")) };
            fields.insert("operationId".into(), json!(id));
            if let Access::Policy(name) = route.access {
                let scope = policy["operations"][name]
                    .as_str()
                    .ok_or_else(|| format!("{id}: policy operation {name} is not in policies/scopes.json"))?;
                fields.insert("security".into(), json!([{"bearer": []}]));
                fields.insert("x-required-scope".into(), json!(scope));
            }
            check_parameters(route, fields)?;
            let item = paths.entry(route.path).or_insert_with(|| json!({}));
            item[route.verb.key()] = op;
        }
        if let Some(id) = operations.keys().next() {
            return Err(format!("{id} is documented but not routed"));
        }
        for (name, schema) in fragment["schemas"].as_object_mut().map(std::mem::take).unwrap_or_default() {
            if schemas.insert(name.clone(), schema).is_some() {
                return Err(format!("schema {name} is declared twice"));
            }
        }
    }
    doc["paths"] = Value::Object(paths);
    doc["components"]["schemas"] = Value::Object(schemas);
    Ok(doc)
}

/// The documented path parameters must be the template's, in its order.
fn check_parameters(route: &Route, op: &Map<String, Value>) -> Result<(), String> {
    let template: Vec<&str> =
        route.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
    let documented: Vec<&str> = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "path")
        .filter_map(|p| p["name"].as_str())
        .collect();
    if template != documented {
        return Err(format!("{}: path parameters {template:?}, documented {documented:?}", route.operation));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn nothing(_: Ctx, _: Req) -> ApiResult {
        Ok(super::super::no_content())
    }

    static ROUTES: Resource = Resource {
        routes: &[
            route!(GET "/a/{id}", "getA", Documented => nothing),
            route!(DELETE "/a/{id}", "deleteA", Documented => nothing),
            route!(GET "/a/verify", "verifyA", Documented => nothing),
            route!(POST "/a/{id}/b/{bid}", "postB", Documented => nothing),
            route!(tail GET "/c/{rest}", "getC", Documented => nothing),
        ],
        openapi: "{}",
    };

    fn find(table: &Table, method: Method, path: &str) -> Result<(&'static str, Vec<String>), String> {
        match table.find(&method, path) {
            Ok(found) => Ok((found.route.operation, found.params)),
            Err(Miss::Path) => Err("404".into()),
            Err(Miss::Verb(allow)) => Err(format!("405 {allow}")),
        }
    }

    #[test]
    fn the_table_routes_by_template_most_literal_first() {
        let table = Table::new(&[&ROUTES]).unwrap();
        assert_eq!(find(&table, Method::GET, "/a/verify").unwrap().0, "verifyA");
        assert_eq!(find(&table, Method::GET, "/a/x1").unwrap(), ("getA", vec!["x1".to_string()]));
        assert_eq!(find(&table, Method::HEAD, "/a/x1").unwrap().0, "getA");
        assert_eq!(find(&table, Method::POST, "/a/1/b/2").unwrap().1, ["1", "2"]);
        assert_eq!(find(&table, Method::GET, "/c/x/y/z").unwrap().1, ["x/y/z"]);
        // A known path's other verbs are 405 with its own verbs, the literal path's alone.
        assert_eq!(find(&table, Method::PUT, "/a/x1").unwrap_err(), "405 DELETE, GET, HEAD");
        assert_eq!(find(&table, Method::DELETE, "/a/verify").unwrap_err(), "405 GET, HEAD");
        assert_eq!(find(&table, Method::TRACE, "/a/verify").unwrap_err(), "405 GET, HEAD");
        for missing in ["/a", "/a//b/2", "/a/1/b", "/b", "/c"] {
            assert_eq!(find(&table, Method::GET, missing).unwrap_err(), "404", "{missing}");
        }
        assert_eq!(table.label("/a/x1"), "/a/{id}");
        assert_eq!(table.label("/nowhere"), UNMATCHED);
    }

    #[test]
    fn a_route_declared_twice_is_refused() {
        static TWICE: Resource = Resource {
            routes: &[
                route!(GET "/a/{id}", "one", Documented => nothing),
                route!(GET "/a/{id}", "two", Documented => nothing),
            ],
            openapi: "{}",
        };
        assert!(Table::new(&[&TWICE]).err().unwrap().contains("routed twice"));
    }

    #[test]
    fn the_document_refuses_what_the_table_and_the_fragment_disagree_on() {
        let frame = r#"{"openapi": "3.1.0", "components": {"schemas": {}}}"#;
        let policy = r#"{"operations": {"a.get": "a:read"}}"#;
        static ONE: Resource = Resource {
            routes: &[route!(GET "/a/{id}", "getA", Policy("a.get") => nothing)],
            openapi: r#"{"operations": {"getA": {"parameters": [{"name": "id", "in": "path"}]}}}"#,
        };
        let doc = document(frame, &[&ONE], policy).unwrap();
        let op = &doc["paths"]["/a/{id}"]["get"];
        assert_eq!(op["operationId"], "getA");
        assert_eq!(op["x-required-scope"], "a:read");
        assert_eq!(op["security"], json!([{"bearer": []}]));

        static UNDOCUMENTED: Resource =
            Resource { routes: &[route!(GET "/b", "getB", Documented => nothing)], openapi: r#"{"operations": {}}"# };
        assert!(document(frame, &[&UNDOCUMENTED], policy).unwrap_err().contains("not documented"));
        static UNROUTED: Resource = Resource { routes: &[], openapi: r#"{"operations": {"getB": {}}}"# };
        assert!(document(frame, &[&UNROUTED], policy).unwrap_err().contains("not routed"));
        static UNKNOWN_POLICY: Resource = Resource {
            routes: &[route!(GET "/b", "getB", Policy("b.get") => nothing)],
            openapi: r#"{"operations": {"getB": {}}}"#,
        };
        assert!(document(frame, &[&UNKNOWN_POLICY], policy).unwrap_err().contains("not in policies"));
        static WRONG_PARAMETER: Resource = Resource {
            routes: &[route!(GET "/b/{bid}", "getB", Documented => nothing)],
            openapi: r#"{"operations": {"getB": {"parameters": [{"name": "id", "in": "path"}]}}}"#,
        };
        assert!(document(frame, &[&WRONG_PARAMETER], policy).unwrap_err().contains("path parameters"));
    }
}
