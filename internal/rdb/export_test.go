package rdb

// ScriptApply is apply.lua, for the tests that call it directly.
var ScriptApply = scriptApply
