-- polyingress (backend haproxy): Gateway API request mirrors (RequestMirror).
--
-- Written by polyingress into the workdir and loaded with lua-load. For a request whose row
-- has mirrors, the frontend puts their slot backends into txn.mir ("slot_0003,slot_0007")
-- and calls this action. For each, a task of its own sends a copy of the request (method, path
-- and query, headers, body) to HAProxy's internal frontend "mirrors" (a UNIX socket in the
-- workdir), which passes it to that slot backend: HAProxy's own load balancing, over the
-- servers the Runtime API keeps up to date. The mirror's answer is read and dropped; the
-- request itself never waits for it. A body larger than the buffer wait-for-body filled
-- (tune.bufsize) is not copied, so neither is its request.

local SOCKET = "unix@mirror.sock"
local SLOT_HEADER = "x-polyingress-mirror"
-- Framing headers: the copy has its own; and no copy may choose its own slot.
local SKIP = {
    ["content-length"] = true,
    ["transfer-encoding"] = true,
    ["connection"] = true,
    [SLOT_HEADER] = true,
}

-- Mirrors with a share (HTTPRouteRequestPercentageMirror, "<slot>:<n>:<d>" in txn.mir): of
-- every d requests of a row, n are copied — a counter per row and mirror, as Traefik's
-- mirroring service counts (copied * d < seen * n), so the share is exact in any run of
-- requests, not a random sample. lua-load runs one Lua state for every thread, so the counts
-- are the process's. They start again at a reload; the table is emptied when it grows large
-- (records are content-addressed: an edited row is a new key).
local counts = {}
local counted = 0

local function chosen(row, index, n, d)
    local key = row .. "#" .. index
    local c = counts[key]
    if c == nil then
        if counted >= 10000 then
            counts = {}
            counted = 0
        end
        c = {seen = 0, copied = 0}
        counts[key] = c
        counted = counted + 1
    end
    c.seen = c.seen + 1
    if c.copied * d < c.seen * n then
        c.copied = c.copied + 1
        return true
    end
    return false
end

local function send(message)
    local socket = core.tcp()
    socket:settimeout(10)
    if socket:connect(SOCKET) then
        if socket:send(message) then
            socket:receive("*a")
        end
    end
    socket:close()
end

core.register_action("polyingress_mirror", {"http-req"}, function(txn)
    local slots = txn:get_var("txn.mir")
    if slots == nil then
        return
    end
    local row = txn:get_var("txn.row") or ""
    local targets = {}
    local index = 0
    for entry in string.gmatch(slots, "[^,]+") do
        index = index + 1
        local slot, n, d = string.match(entry, "^([^:]+):(%d+):(%d+)$")
        if slot == nil then
            targets[#targets + 1] = entry
        elseif chosen(row, index, tonumber(n), tonumber(d)) then
            targets[#targets + 1] = slot
        end
    end
    if #targets == 0 then
        return
    end
    local request = txn.http:req_get_headers()
    local body = txn.sf:req_body() or ""
    local declared = request["content-length"] and tonumber(request["content-length"][0])
    if request["transfer-encoding"] ~= nil or (declared or 0) ~= #body then
        return
    end
    -- Names and values as HAProxy parsed them (no CR or LF), method and target likewise.
    local lines = {txn.sf:method() .. " " .. txn.sf:pathq() .. " HTTP/1.1"}
    for name, values in pairs(request) do
        if not SKIP[name] then
            local i = 0
            while values[i] ~= nil do
                lines[#lines + 1] = name .. ": " .. values[i]
                i = i + 1
            end
        end
    end
    lines[#lines + 1] = "content-length: " .. #body
    lines[#lines + 1] = "connection: close"
    local head = table.concat(lines, "\r\n") .. "\r\n"
    for _, slot in ipairs(targets) do
        local message = head .. SLOT_HEADER .. ": " .. slot .. "\r\n\r\n" .. body
        core.register_task(function()
            send(message)
        end)
    end
end, 0)
