-- wrk script of the AgentIdP load harness. Each line of the file named by the first
-- script argument is one request: METHOD <tab> PATH <tab> BODY <tab> AUTHORIZATION
-- (a BODY starting with { is sent as JSON, any other as a form).
-- Threads walk the lines round-robin from different offsets. done() prints one JSON
-- line the harness parses; wrk's own error counts (socket errors and non-2xx/3xx
-- statuses) are reported so failed requests are never counted as throughput.

local lines = {}
local index = 0
local thread_no = 0

function setup(thread)
  thread:set("id", thread_no)
  thread_no = thread_no + 1
end

function init(args)
  for line in io.lines(args[1]) do
    local method, path, body, auth = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
    local headers = {}
    if body:sub(1, 1) == "{" then
      headers["Content-Type"] = "application/json"
    elseif body ~= "" then
      headers["Content-Type"] = "application/x-www-form-urlencoded"
    end
    if auth ~= "" then headers["Authorization"] = auth end
    lines[#lines + 1] = wrk.format(method, path, headers, body ~= "" and body or nil)
  end
  index = (id or 0) * 7919
end

function request()
  index = index + 1
  return lines[(index % #lines) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status, e.status,
    latency:percentile(50.0), latency:percentile(99.0), latency:percentile(99.9), latency.mean))
end
