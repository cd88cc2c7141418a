-- yimen bench --client wrk: plays prebuilt WeChat deliveries (bots/bench/wrk.py).
-- Run with one connection per thread; the arguments after "--" are the directory of the
-- requests files, one per thread (each request as its length in bytes, "\n", the bytes),
-- and what a good answer is: "xml" (a WeChat passive reply; "success" is late) or "json"
-- (a JSON list, Rasa's REST channel; "[]", no answer, is late).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

local queue, next_index = {}, 0
local counts = { late = 0, bad = 0, ran_out = 0 }

-- One more of `name` on this thread, where done() reads it.
local function count(name)
  counts[name] = counts[name] + 1
  wrk.thread:set(name, counts[name])
end

local checking = false
local json = false

function init(args)
  json = args[2] == "json"
  -- wrk calls the first thread's request() once after init, to check the script,
  -- and sends nothing of it: that call must not use up a message.
  checking = wrk.thread:get("id") == 1
  local path = args[1] .. "/requests-" .. wrk.thread:get("id") .. ".bin"
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local at = 1
  while at <= #data do
    local newline = string.find(data, "\n", at, true)
    local length = tonumber(string.sub(data, at, newline - 1))
    queue[#queue + 1] = string.sub(data, newline + 1, newline + length)
    at = newline + length + 1
  end
end

function request()
  if checking then
    checking = false
    return queue[1]
  end
  next_index = next_index + 1
  local raw = queue[next_index]
  if raw == nil then
    -- Out of messages: the run is void (wrk.py fails it); stop this connection.
    if counts.ran_out == 0 then count("ran_out") end
    wrk.thread:stop()
    return queue[#queue]
  end
  return raw
end

function response(status, headers, body)
  if status ~= 200 then
    count("bad")
  elseif json then
    -- Rasa's REST channel: a JSON list of messages; [] said nothing.
    if body == "[]" then
      count("late")
    elseif string.sub(body, 1, 1) ~= "[" then
      count("bad")
    end
  elseif body == "success" then
    count("late")
  elseif string.sub(body, 1, 5) ~= "<xml>" then
    count("bad")
  end
end

function done(summary, latency, requests)
  local totals = { late = 0, bad = 0, ran_out = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
  end
  local errors = summary.errors
  io.write(string.format(
    '{"yimen_wrk": {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "timeout": %d, "late": %d, "bad": %d, "ran_out": %d, '
      .. '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, totals.late, totals.bad, totals.ran_out,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max
  ))
end
