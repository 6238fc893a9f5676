-- wrk script for the ingest benchmark: one signed Jira body, a distinct
-- X-Atlassian-Webhook-Identifier on every request (run prefix, thread, counter).
-- The identifier is a header, not part of the signed body, so one signature serves all.
local body, signature, run
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
  body = file:read("*a")
  file:close()
  signature = os.getenv("BENCH_SIGNATURE")
  run = os.getenv("BENCH_RUN")
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature"] = signature,
    ["X-Atlassian-Webhook-Identifier"] = run .. "-" .. tid .. "-" .. counter,
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
