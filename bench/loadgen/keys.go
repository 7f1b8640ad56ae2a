package main

import (
	"fmt"
	"math/rand"
)

// Key layout. Every key the benchmark writes is exactly 32 bytes, so the two systems store the
// same bytes: a 9-byte prefix that names the key family and a 23-digit zero-padded index. The
// zero padding keeps lexical order equal to numeric order, which is what lets a "range of 1000
// keys" be expressed as [key(i), key(i+1000)).
const (
	keyLen       = 32
	valueLen     = 256
	matrixPrefix = "bench/kv/" // keys used by the put/get/txn/range matrix
	loadPrefix   = "bench/ld/" // keys written by the bulk "load N keys" mode
)

func key(prefix string, i int) string {
	k := fmt.Sprintf("%s%0*d", prefix, keyLen-len(prefix), i)
	if len(k) != keyLen {
		panic("key length drifted from 32 bytes: " + k)
	}
	return k
}

// randomValue returns valueLen printable random bytes. Printable so that a human reading the
// store with etcdctl sees something sane; random so that no layer can win by compressing.
func randomValue(r *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
	b := make([]byte, valueLen)
	for i := range b {
		b[i] = alphabet[r.Intn(len(alphabet))]
	}
	return string(b)
}
