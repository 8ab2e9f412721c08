//! `agentidp ctl users`: the people of an organization.

use anyhow::bail;
use serde_json::{json, Value};

use super::client::{object, segment, Api, Output};
use super::Listing;

#[derive(clap::Subcommand)]
pub(super) enum UserCmd {
    /// Users, a page or --all (--email narrows to addresses containing it).
    List {
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        listing: Listing,
    },
    /// One user.
    Get { id: String },
    /// A new user. The password, if any, is read from standard input (--password-stdin):
    /// a flag would show in the process list.
    Create {
        email: String,
        #[arg(long)]
        name: String,
        /// A scope the user holds (repeat for more).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change what is given; the rest stays.
    Update {
        id: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// On update, the scopes given replace the old ones.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Remove every scope.
        #[arg(long, conflicts_with = "scopes")]
        no_scopes: bool,
    },
    /// Suspend: the user cannot sign in until reactivated.
    Suspend { id: String },
    /// Undo a suspension.
    Reactivate { id: String },
    /// Set the user's password, read from standard input.
    SetPassword { id: String },
    /// Delete a user.
    Delete { id: String },
}

fn password_from_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    match text.trim_end_matches(['\r', '\n']) {
        "" => bail!("no password on standard input"),
        password => Ok(password.to_string()),
    }
}

pub(super) async fn users(api: &Api, out: &Output, org_id: Option<String>, cmd: UserCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let query: Vec<(&str, String)> = org_id.clone().map(|o| ("org_id", o)).into_iter().collect();
    let path = |id: &str| format!("/api/v1/users/{}", segment(id));
    match cmd {
        UserCmd::List { email, listing } => {
            let mut query = query;
            query.extend(email.map(|e| ("email", e)));
            let page = api.list("/api/v1/users", query, &listing).await?;
            let columns = [
                ("ID", "id"),
                ("EMAIL", "email"),
                ("NAME", "name"),
                ("STATUS", "status"),
                ("SCOPES", "scopes"),
                ("LAST SIGN-IN", "last_login_at"),
            ];
            out.table(&page, &columns)
        }
        UserCmd::Get { id } => out.record(&api.call(Method::GET, &path(&id), &query, None).await?),
        UserCmd::Create { email, name, scopes, password_stdin } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let body = object([
                ("email", Some(Value::from(email))),
                ("name", Some(Value::from(name))),
                ("scopes", Some(json!(scopes))),
                ("password", password.map(Value::from)),
                ("org_id", org_id.map(Value::from)),
            ]);
            out.record(&api.call(Method::POST, "/api/v1/users", &[], Some(body)).await?)
        }
        UserCmd::Update { id, email, name, scopes, no_scopes } => {
            let with_scopes = no_scopes || !scopes.is_empty();
            let body = object([
                ("email", email.map(Value::from)),
                ("name", name.map(Value::from)),
                ("scopes", with_scopes.then(|| json!(scopes))),
            ]);
            out.record(&api.call(Method::PATCH, &path(&id), &query, Some(body)).await?)
        }
        UserCmd::Suspend { id } => {
            out.record(&api.call(Method::POST, &format!("{}/suspend", path(&id)), &query, None).await?)
        }
        UserCmd::Reactivate { id } => {
            out.record(&api.call(Method::POST, &format!("{}/reactivate", path(&id)), &query, None).await?)
        }
        UserCmd::SetPassword { id } => {
            let body = json!({"password": password_from_stdin()?});
            out.record(&api.call(Method::PUT, &format!("{}/password", path(&id)), &query, Some(body)).await?)
        }
        UserCmd::Delete { id } => {
            api.call(Method::DELETE, &path(&id), &query, None).await?;
            out.done(&format!("user {id} deleted"))
        }
    }
}
