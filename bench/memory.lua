-- wrk script for `python -m bench.memory`: the three bench queries in turn, and every tenth
-- request a document never seen before (an alias with a counter), so the document, plan and
-- cost caches keep filling: their bounds, not the request count, must cap the server's memory.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_result.lua")
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
  print_bench_result(summary, latency)
end
