-- wrk script for `python -m bench.soak`: the soak's mixed workload, and what it acknowledged.
--
-- Each thread repeats a cycle of 20 requests: 16 reads (6 feeds, 5 post details, 5 users'
-- pages), 3 addComment and 1 createPost, so 80 / 15 / 5 %. Each request signs in with the next
-- token of SOAK_TOKENS. Every tenth addComment is blank: ValidationError is its expected typed
-- result. Every fifth createPost is a draft. Comment texts, post titles and the two new tags of
-- each post carry SOAK_RUN, the thread's number (set in `setup`) and a per-thread counter, so
-- every one is unique. `response` sorts each answer from its body (wrk does not say which
-- request it answers) and keeps the id of every acknowledged write; `done` writes the counts,
-- failures and acknowledgements to SOAK_OUTCOME (bench/outcome.py reads it) and prints the
-- BENCH_RESULT line (bench/wrk_result.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_result.lua")

local CYCLE = {
  "feed", "detail", "user", "comment", "feed", "detail", "user", "feed", "post", "detail",
  "user", "comment", "feed", "detail", "user", "feed", "comment", "detail", "user", "feed",
}
local BLANK_EVERY = 10
local DRAFT_EVERY = 5
local SAMPLES_PER_THREAD = 5

-- The main state: one entry per thread, so `done` can read what each one counted.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_number", #threads)
end

local function lines(variable)
  local path = os.getenv(variable)
  assert(path, variable .. " is not set")
  local found = {}
  for line in io.lines(path) do
    found[#found + 1] = line
  end
  assert(#found > 0, variable .. " names an empty file")
  return found
end

-- Per thread (each has a Lua state of its own): what it sent, what came back, what was kept.
local queries = {}
local tokens, detail_ids, usernames, comment_posts, run
sent, answered, failed, records = {}, {}, {}, {}
local counter, comments, posts, samples = 0, 0, 0, 0

function init(args)
  tokens = lines("SOAK_TOKENS")
  detail_ids = lines("SOAK_DETAIL_IDS")
  usernames = lines("SOAK_USERNAMES")
  comment_posts = lines("SOAK_COMMENT_POSTS")
  -- Each line: a name, a tab, the query text as a JSON string (quotes and escapes included).
  for _, line in ipairs(lines("SOAK_QUERIES")) do
    local name, text = line:match("^(%w+)\t(.+)$")
    queries[name] = text
  end
  run = os.getenv("SOAK_RUN")
  assert(run, "SOAK_RUN is not set")
end

local function pick(list, number)
  return list[(number - 1) % #list + 1]
end

local function add(counts, key)
  counts[key] = (counts[key] or 0) + 1
end

local function body(query, variables)
  return '{"query":' .. queries[query] .. ',"variables":' .. variables .. '}'
end

local function comment_body()
  comments = comments + 1
  local content = string.format("soak %s %d-%d", run, thread_number, comments)
  if comments % BLANK_EVERY == 0 then
    content = "   "
    add(sent, "blank_comment")
  end
  local post = pick(comment_posts, comments)
  return body("comment", '{"input":{"postId":"' .. post .. '","content":"' .. content .. '"}}')
end

local function post_body()
  posts = posts + 1
  local marker = string.format("%s-%d-%d", run, thread_number, posts)
  local published = "true"
  if posts % DRAFT_EVERY == 0 then
    published = "false"
    add(sent, "draft")
  end
  return body("post", string.format(
    '{"input":{"title":"soak %s","content":"Written by the soak.","published":%s,'
      .. '"tags":["%s-a","%s-b"]}}', marker, published, marker, marker))
end

local builders = {
  feed = function() return body("feed", "{}") end,
  detail = function() return body("detail", '{"id":"' .. pick(detail_ids, counter) .. '"}') end,
  user = function() return body("user", '{"username":"' .. pick(usernames, counter) .. '"}') end,
  comment = comment_body,
  post = post_body,
}

function request()
  counter = counter + 1
  local kind = pick(CYCLE, counter)
  add(sent, kind)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. pick(tokens, counter),
  }
  return wrk.format("POST", nil, headers, builders[kind]())
end

local function fail(reason, text)
  add(failed, reason)
  if samples < SAMPLES_PER_THREAD then
    samples = samples + 1
    records[#records + 1] = "sample\t" .. reason .. "\t" .. text:sub(1, 300):gsub("[\t\r\n]", " ")
  end
end

-- What each write answers when it worked, how its fields are read, and the record it makes.
local WRITES = {
  addComment = {
    typename = "Comment",
    record = "comment",
    fields = '"id":"([^"]+)","post":{"id":"([^"]+)"},"content":"([^"]*)"',
  },
  createPost = {
    typename = "Post",
    record = "post",
    fields = '"id":"([^"]+)","published":(%a+),"title":"([^"]*)"',
  },
}

local function write_answered(field, result, text)
  local write = WRITES[field]
  local typename = result:match('^{"__typename":"(%w+)"')
  if field == "addComment" and typename == "ValidationError"
      and result:find('"field":"content"', 1, true) then
    return add(answered, "blank_comment")
  end
  if typename ~= write.typename then
    return fail(field .. " " .. tostring(typename), text)
  end
  local id, second, third = result:match(write.fields)
  if id == nil then
    return fail(field .. " unread", text)
  end
  add(answered, write.record)
  records[#records + 1] = table.concat({write.record, id, second, third}, "\t")
end

-- The root field of each read, as `sent` counts its request.
local READS = {posts = "feed", post = "detail", user = "user"}

function response(status, headers, text)
  if status ~= 200 then
    return fail("status " .. status, text)
  end
  if text:find('"errors"', 1, true) then
    return fail("errors", text)
  end
  local field, result = text:match('^{"data":{"(%w+)":(.*)$')
  if WRITES[field] ~= nil then
    return write_answered(field, result, text)
  end
  if READS[field] == nil then
    return fail("unexpected " .. tostring(field), text)
  end
  if result:sub(1, 4) == "null" then
    return fail("null " .. field, text)
  end
  add(answered, READS[field])
end

function done(summary, latency, requests)
  local path = os.getenv("SOAK_OUTCOME")
  assert(path, "SOAK_OUTCOME is not set")
  local out = assert(io.open(path, "w"))
  for _, thread in ipairs(threads) do
    for _, name in ipairs({"sent", "answered", "failed"}) do
      for key, count in pairs(thread:get(name)) do
        out:write(name, "\t", key, "\t", count, "\n")
      end
    end
    for _, line in ipairs(thread:get("records")) do
      out:write(line, "\n")
    end
  end
  out:close()
  print_bench_result(summary, latency)
end
