package router

// Buckets is the resolution of the traffic split: a weight of w percent sends
// the keys whose bucket is below w·Buckets/100 to the canary.
const Buckets = 10000

// Bucket maps a routing key to [0, Buckets). The rollout id is mixed in so
// each rollout samples a different set of keys, while within one rollout a
// key's bucket never changes: raising the weight only moves keys from stable
// to canary, never back. FNV-1a alone mixes the high bits poorly for short,
// similar keys (cam-1, cam-2, …), so a splitmix64 finaliser follows.
func Bucket(rolloutID, key string) int { return bucket(rolloutID, key) }

// bucket is Bucket for a key held as a string or as bytes (a request header
// value), so the hot path needs no conversion.
func bucket[K string | []byte](rolloutID string, key K) int {
	// FNV-1a by hand: hash/fnv would allocate a hasher per request.
	const offset, prime = 14695981039346656037, 1099511628211
	x := uint64(offset)
	for i := 0; i < len(rolloutID); i++ {
		x = (x ^ uint64(rolloutID[i])) * prime
	}
	x *= prime // the 0 separator byte
	for i := 0; i < len(key); i++ {
		x = (x ^ uint64(key[i])) * prime
	}
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return int(x % Buckets)
}

// threshold converts a weight in percent to a bucket bound.
func threshold(percent float64) int {
	return int(percent*Buckets/100 + 0.5)
}
