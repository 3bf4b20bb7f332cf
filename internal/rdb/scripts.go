package rdb

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The scripts, one file each under lua/, each with a header listing its KEYS and ARGV (1-based) and
// its result. Every key a script touches is passed in KEYS, built by Keys; every script starts with
// lua/lib.lua, the helpers they share (the layout of the per-job fields is described there).

//go:embed lua/lib.lua
var luaLib string

//go:embed lua/load.lua
var luaLoad string

//go:embed lua/open.lua
var luaOpen string

//go:embed lua/end.lua
var luaEnd string

//go:embed lua/watermark.lua
var luaWatermark string

//go:embed lua/pause.lua
var luaPause string

//go:embed lua/apply.lua
var luaApply string

//go:embed lua/batches.lua
var luaBatches string

//go:embed lua/dump.lua
var luaDump string

//go:embed lua/restore.lua
var luaRestore string

var (
	scriptLoad      = redis.NewScript(luaLib + luaLoad)
	scriptOpen      = redis.NewScript(luaLib + luaOpen)
	scriptEnd       = redis.NewScript(luaLib + luaEnd)
	scriptWatermark = redis.NewScript(luaLib + luaWatermark)
	scriptPause     = redis.NewScript(luaLib + luaPause)
	scriptApply     = redis.NewScript(luaLib + luaApply)
	scriptBatches   = redis.NewScript(luaLib + luaBatches)
	scriptDump      = redis.NewScript(luaLib + luaDump)
	scriptRestore   = redis.NewScript(luaLib + luaRestore)
)
