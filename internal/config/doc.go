// Package config reads the xaa config file: one YAML document, decoded
// strictly, then a short list of XAA_* environment overrides, then
// Validate. See examples/config.yaml for every key.
//
// Strict means an operator's mistake is an error, never a silent default:
// an unknown or misspelled key, a key given twice, a value of the wrong
// type, a duration without a unit, a second YAML document, "yes" for a
// boolean. Every error names the file, line, column and dotted key path,
// for example
//
//	config.yaml:7:3: database.urll: unknown key (did you mean "url"?)
//	config.yaml:3:19: database.max_open_conns: expected an integer, got "ten"
//
// A key with no value ("url:") or a section whose keys are all commented
// out keeps its default. Anchors, aliases, merge keys and explicit tags
// (other than !!str) are refused: each value should be readable where it
// applies.
//
// The environment overrides the file:
//
//	XAA_DATABASE_URL            database.url
//	XAA_DATABASE_URL_FILE       database.url, read from the named file
//	XAA_KEYS_WRAPPING_KEY       keys.wrapping_key (clears keys.wrapping_key_file)
//	XAA_KEYS_WRAPPING_KEY_FILE  keys.wrapping_key_file (clears keys.wrapping_key)
//	XAA_LOG_LEVEL               log.level
//	XAA_LISTEN_ADDR             listen.addr
//	XAA_ADMIN_ADDR              listen.admin_addr
//
// Setting a variable and its _FILE variant together is an error.
//
// This package is the file format only. cmd/xaa turns a validated Config
// into each server's own runtime Config, so servers never see YAML and the
// file format can change without touching them.
package config
