-- wrk script for `python -m bench.memory`: the three bench queries in turn, and every tenth
-- request a document never seen before (an alias with a counter), so the document, plan and
-- cost caches keep filling: their bounds, not the request count, must cap the server's memory.
local bodies = {}
for _, name in ipairs({"BENCH_FEED", "BENCH_DEEP", "BENCH_DETAIL"}) do
  local file = assert(io.open(os.getenv(name), "rb"))
  bodies[#bodies + 1] = file:read("*a")
  file:close()
end
local authorization = os.getenv("BENCH_AUTHORIZATION")
local counter = 0
local thread_id = tostring(math.random(1, 1000000000))

request = function()
  counter = counter + 1
  local body
  if counter % 10 == 0 then
    body = string.format(
      '{"query": "{ d%s_%d: posts(first: 2) { nodes { id title } } }"}', thread_id, counter)
  else
    body = bodies[(counter % 3) + 1]
  end
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = authorization}
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d,'
      .. ' "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d,'
      .. ' "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
