package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"

	"github.com/openxaa/xaa/internal/store"
)

// GenesisHash is the PrevHash of the first record of every stream.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Hash recipes. A record's recipe follows from its stream: the legacy
// stream keeps v1, under which its records were written; every other
// stream uses v2, which also covers the stream's name, so a record cannot
// be moved to another stream without breaking its hash.
const (
	RecipeV1 = 1
	RecipeV2 = 2
)

// Tags version the canonical encodings; a new encoding gets a new tag.
const (
	tagV1 = "openxaa.audit.v1"
	tagV2 = "openxaa.audit.v2"
)

// RecipeOf returns the hash recipe of a stream's records.
func RecipeOf(stream string) int {
	if stream == StreamLegacy {
		return RecipeV1
	}
	return RecipeV2
}

// Hash returns the hex SHA-256 of the canonical encoding of e under its
// stream's recipe (RecipeOf). The encoding covers every field except ID
// (a storage locator) and Hash:
//
//	v1: "openxaa.audit.v1", Seq, Time, Type, Actor, Subject, ClientID,
//	    Outcome, Rule, Reason, RequestID, Data, PrevHash
//	v2: "openxaa.audit.v2", Stream, Seq, Time, Type, Actor, Subject,
//	    ClientID, Outcome, Rule, Reason, RequestID, Data, PrevHash
//
// Integers (Seq, and Time as Unix milliseconds) are 8-byte big-endian
// two's complement. Strings are an 8-byte big-endian byte length followed
// by the bytes. Data is its entry count followed by each key and value as
// strings, keys in ascending byte order. Every field is delimited by its
// length, so no two different records encode alike.
func Hash(e *store.AuditEvent) string {
	sum := sha256.Sum256(AppendEncoding(nil, e, RecipeOf(e.Stream)))
	return hex.EncodeToString(sum[:])
}

// AppendEncoding appends the canonical encoding of e under recipe (RecipeV1
// or RecipeV2) to b.
func AppendEncoding(b []byte, e *store.AuditEvent, recipe int) []byte {
	if recipe == RecipeV1 {
		b = appendString(b, tagV1)
	} else {
		b = appendString(b, tagV2)
		b = appendString(b, e.Stream)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMilli()))
	for _, s := range []string{e.Type, e.Actor, e.Subject, e.ClientID, e.Outcome, e.Rule, e.Reason, e.RequestID} {
		b = appendString(b, s)
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint64(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, e.Data[k])
	}
	return appendString(b, e.PrevHash)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}
