-- Sends each pre-signed webhook in the file REQS once, and tells the bench when all are answered.
-- Same file format and thread split as ../shared/baseline/wrk_post.lua (thread k of n
-- takes lines k, k+n, k+2n, ...), but it never wraps around, so "offer N texts" means N.
-- A thread says so on stdout once every one of its texts has been answered. Connections
-- with no text left ask for DONE_PATH (a 404 that stores nothing) meanwhile, since wrk
-- has no "idle" state; they must not pause (wrk's delay()): a pause comes after wrk has
-- reconnected, and would hold one of gunicorn's sync workers waiting on an idle socket.
-- done() prints how the texts were answered.
local threads = {}
local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local idx = 0
ok, other = 0, 0  -- globals: done() reads them with thread:get
local finished = nil
init = function(args)
  local n = tonumber(os.getenv("WRK_THREADS") or "2")
  local path = os.getenv("PATH_SMS") or "/sms"
  local i = 0
  for line in io.lines(os.getenv("REQS")) do
    if i % n == id then
      local sig, body = line:match("([^\t]+)\t(.*)")
      reqs[#reqs + 1] = wrk.format("POST", path,
        {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = sig}, body)
    end
    i = i + 1
  end
  finished = wrk.format("GET", os.getenv("DONE_PATH") or "/bench-done-404")
end

-- wrk calls thread 0's request() once before the run, to check the script (see wrk.c's
-- script_verify_request): that call must not use up a text.
local checked = false
request = function()
  if id == 0 and not checked then
    checked = true
    return reqs[1] or finished
  end
  idx = idx + 1
  if idx > #reqs then return finished end
  return reqs[idx]
end

local announced = false
response = function(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status ~= 404 then other = other + 1 end
  if ok + other == #reqs and not announced then
    -- wrk runs for the whole -d duration whatever its threads do (and wrk.thread:stop()
    -- loses answers still in flight): the bench reads this line, and once every thread
    -- has said it, sends wrk SIGINT, which ends the run early.
    announced = true
    io.write("bench-thread-done\n")
    io.stdout:flush()
  end
end

done = function(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + (t:get("ok") or 0)
    total_other = total_other + (t:get("other") or 0)
  end
  io.write(string.format("bench-statuses ok=%d other=%d\n", total_ok, total_other))
end
