-- polyingress: the controller's channel into the endpoint state (see polyingress_balancer.lua).
--
-- Served only by a server that listens on a UNIX socket in the controller's workdir (a 0700
-- directory); a request from anywhere else ($remote_addr other than "unix:") is refused, and
-- so is one without the per-run token that the controller rendered into the 0600
-- configuration (header X-Polyingress-Token, compared in constant time).
--
--   GET   /endpoints[?backend=a,b]  {"generation": N, "backends": {"a": [["10.0.0.1", 8080]]}}
--   PUT   /endpoints   {"backends": {...}}                   the whole state; others deleted
--   PATCH /endpoints   {"backends": {...}, "delete": [...]}  only the backends named
--
-- A write is validated entirely before the first key changes. It answers what the dictionary
-- holds once it is done, as GET would (PUT: the whole state; PATCH: the backends it named,
-- deleted ones absent), so the controller verifies a write without a second request.
-- A backend that does not fit into the dictionary is deleted (its requests get 503: never
-- the endpoints it had before) and the write answers 507, so the controller falls back.

local balancer = require("polyingress_balancer")
-- Loaded here, in the master (init_by_lua): workers running as nobody may not read the
-- package directory, and the split of Gateway API rules runs in them.
require("polyingress_split")
local bit = require("bit")
local cjson = require("cjson.safe")

local ngx = ngx
local bor = bit.bor
local bxor = bit.bxor
local byte = string.byte
local concat = table.concat
local find = string.find
local floor = math.floor
local sub = string.sub
local tostring = tostring
local type = type

local GENERATION = balancer.GENERATION
local PREFIX = balancer.PREFIX
local TOKEN_HEADER = "X-Polyingress-Token"

local dict = ngx.shared[balancer.DICT]
local token

local _M = {}

local function same(given, expected)
    if type(given) ~= "string" or type(expected) ~= "string" or #given ~= #expected then
        return false
    end
    local diff = 0
    for i = 1, #expected do
        diff = bor(diff, bxor(byte(given, i), byte(expected, i)))
    end
    return diff == 0
end

local function valid_name(name)
    return type(name) == "string" and #name <= 512 and find(name, "^[a-z0-9][a-z0-9_%-]*$") ~= nil
end

local function valid_address(address)
    if type(address) ~= "string" or #address > 45 then
        return false
    end
    local a, b, c, d = address:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if a ~= nil then
        return tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256 and tonumber(d) < 256
    end
    return find(address, ":", 1, true) ~= nil and find(address, "^[0-9a-fA-F:.]+$") ~= nil
end

local function valid_port(port)
    return type(port) == "number" and port >= 1 and port <= 65535 and floor(port) == port
end

-- backends: {name: [[address, port], ...]} -> {name: canonical JSON text}, or nil and why.
local function encode_backends(backends)
    if type(backends) ~= "table" then
        return nil, "backends: expected an object"
    end
    local out = {}
    for name, endpoints in pairs(backends) do
        if not valid_name(name) then
            return nil, "backend name " .. tostring(name) .. ": expected [a-z0-9_-]"
        end
        if type(endpoints) ~= "table" then
            return nil, name .. ": expected a list of [address, port]"
        end
        local parts = {}
        for i = 1, #endpoints do
            local e = endpoints[i]
            if type(e) ~= "table" or not valid_address(e[1]) or not valid_port(e[2]) then
                return nil, name .. "[" .. (i - 1) .. "]: expected [IP address, port]"
            end
            parts[i] = '["' .. e[1] .. '",' .. floor(e[2]) .. "]"
        end
        out[name] = "[" .. concat(parts, ",") .. "]"
    end
    return out
end

local function state_keys()
    local names = {}
    for _, key in ipairs(dict:get_keys(0)) do
        if sub(key, 1, #PREFIX) == PREFIX then
            names[#names + 1] = sub(key, #PREFIX + 1)
        end
    end
    return names
end

-- Apply a validated document; returns the new generation and the backends that did not fit.
local function write(doc, replace)
    local encoded, err = encode_backends(doc.backends or {})
    if encoded == nil then
        return nil, err
    end
    local deletes = {}
    if replace then
        for _, name in ipairs(state_keys()) do
            if encoded[name] == nil then
                deletes[#deletes + 1] = name
            end
        end
    elseif doc.delete ~= nil then
        if type(doc.delete) ~= "table" then
            return nil, "delete: expected a list of backend names"
        end
        for i = 1, #doc.delete do
            if not valid_name(doc.delete[i]) then
                return nil, "delete[" .. (i - 1) .. "]: expected a backend name"
            end
            deletes[#deletes + 1] = doc.delete[i]
        end
    end
    local full = {}
    for name, text in pairs(encoded) do
        local ok = dict:safe_set(PREFIX .. name, text)
        if not ok then
            dict:delete(PREFIX .. name)
            full[#full + 1] = name
        end
    end
    for _, name in ipairs(deletes) do
        dict:delete(PREFIX .. name)
    end
    local generation = dict:incr(GENERATION, 1, 0)
    local touched = nil  -- PUT: the whole state is read back
    if not replace then
        touched = deletes
        for name in pairs(encoded) do
            touched[#touched + 1] = name
        end
    end
    return generation, nil, full, touched
end

local function reply(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode(body))
    return ngx.exit(status)
end

local function read_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body ~= nil then
        return body
    end
    local path = ngx.req.get_body_file()
    if path == nil then
        return nil
    end
    local file = io.open(path, "rb")
    if file == nil then
        return nil
    end
    body = file:read("*a")
    file:close()
    return body
end

local function state(names)
    local parts = {}
    for _, name in ipairs(names or state_keys()) do
        local raw = dict:get(PREFIX .. name)
        if raw ~= nil then
            parts[#parts + 1] = '"' .. name .. '":' .. raw
        end
    end
    local generation = dict:get(GENERATION) or 0
    return '{"generation":' .. generation .. ',"backends":{' .. concat(parts, ",") .. "}}"
end

function _M.handle()
    if ngx.var.remote_addr ~= "unix:" then
        return reply(403, { error = "the endpoint channel only answers on its UNIX socket" })
    end
    local given = ngx.req.get_headers()[TOKEN_HEADER]
    if given == nil then
        return reply(401, { error = "missing " .. TOKEN_HEADER })
    end
    if not same(given, token) then
        return reply(403, { error = "wrong " .. TOKEN_HEADER })
    end
    local method = ngx.req.get_method()
    if method == "GET" then
        local names
        local wanted = ngx.var.arg_backend
        if wanted ~= nil and wanted ~= "" then
            names = {}
            for name in wanted:gmatch("[^,]+") do
                if not valid_name(name) then
                    return reply(400, { error = "backend: expected names separated by commas" })
                end
                names[#names + 1] = name
            end
        end
        ngx.header["Content-Type"] = "application/json"
        ngx.print(state(names))
        return ngx.exit(200)
    end
    if method ~= "PUT" and method ~= "PATCH" then
        ngx.header["Allow"] = "GET, PUT, PATCH"
        return reply(405, { error = "method not allowed" })
    end
    local body = read_body()
    local doc = body and cjson.decode(body)
    if type(doc) ~= "table" then
        return reply(400, { error = "expected a JSON object" })
    end
    local generation, err, full, touched = write(doc, method == "PUT")
    if generation == nil then
        return reply(400, { error = err })
    end
    if #full > 0 then
        ngx.log(ngx.ERR, "polyingress: lua_shared_dict ", balancer.DICT, " is full; ",
            "backends without endpoints now: ", concat(full, " "))
        return reply(507, { error = "no memory in lua_shared_dict", backends = full,
            generation = generation })
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.print(state(touched))
    return ngx.exit(200)
end

local function load_seed(path)
    local file = io.open(ngx.config.prefix() .. path, "rb")
    if file == nil then
        return
    end
    local body = file:read("*a")
    file:close()
    local doc = cjson.decode(body)
    if type(doc) ~= "table" then
        ngx.log(ngx.ERR, "polyingress: ", path, ": not a JSON object; not loaded")
        return
    end
    local generation, err = write(doc, true)
    if generation == nil then
        ngx.log(ngx.ERR, "polyingress: ", path, ": ", err, "; not loaded")
    end
end

-- Called from init_by_lua: in the master, whenever it loads a configuration (start and every
-- reload; not by nginx -t), before the workers fork.
--   opts.token        the per-run token
--   opts.unavailable  "127.0.0.1:port" of the server answering 503 (polyingress_balancer)
--   opts.seed         a state file (relative to the prefix) loaded when the dictionary is new
--                     (a fresh start, or Lua mode coming back after static upstreams), so the
--                     first request already finds its endpoints
function _M.init(opts)
    token = opts.token
    balancer.configure(opts)
    if opts.seed ~= nil and dict:get(GENERATION) == nil then
        local ok, err = pcall(load_seed, opts.seed)
        if not ok then
            ngx.log(ngx.ERR, "polyingress: ", opts.seed, ": ", tostring(err), "; not loaded")
        end
    end
end

return _M
