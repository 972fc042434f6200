-- wrk script for `make bench` (bench/load.py): POST one GraphQL request body over and over.
-- BENCH_BODY names the file with the JSON body; BENCH_AUTHORIZATION is the header's value.
-- `done` prints one line of JSON that bench/load.py reads: counts, errors and latencies (µs).
local body = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = body:read("*a")
body:close()
wrk.headers["Content-Type"] = "application/json"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
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
