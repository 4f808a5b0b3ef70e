-- Sends pre-signed webhooks of the Android app (SMS Gateway for Android) from the file named
-- by REQS, each line at most once per thread's share: "timestamp<TAB>signature<TAB>json body".
-- Thread k of n takes lines k, k+n, k+2n, ... (as the baseline's wrk_post.lua does).
local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local reqs = {}
local idx = 0
init = function(args)
  local n = tonumber(os.getenv("WRK_THREADS") or "2")
  local path = os.getenv("PATH_SMS") or "/android/webhook"
  local i = 0
  for line in io.lines(os.getenv("REQS")) do
    if i % n == id then
      local ts, sig, body = line:match("([^\t]+)\t([^\t]+)\t(.*)")
      reqs[#reqs + 1] = wrk.format("POST", path, {["Content-Type"] = "application/json",
        ["X-Timestamp"] = ts, ["X-Signature"] = sig}, body)
    end
    i = i + 1
  end
end
request = function()
  idx = idx + 1
  if idx > #reqs then idx = 1 end  -- wraps only if the run outlasts the file
  return reqs[idx]
end
