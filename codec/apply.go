package codec

import (
	"encoding/binary"
	"unicode/utf8"
)

// Apply changes s in place: each key of set gets its value (patched where
// s holds the key, appended where it does not) and each key of removed is
// dropped. It is for a writer that has made the change durable already (a
// delta row) and needs no copy of the snapshot: a change of k keys costs k
// lookups, plus a copy of the payload only when keys are removed.
//
// A new key that Encode would refuse (ErrInvalidUTF8, ErrKeyTooLong,
// ErrTooManyKeys, ErrTooLarge) fails the call with an *EncodeError before
// anything changes. Keys of removed that s does not hold are ignored; a
// key both set and removed fails with ErrSetAndRemoved.
//
// An edit open on s is abandoned, and payloads s returned before must not
// be used afterwards: Apply may change them.
func (s *Snapshot) Apply(set map[string]uint64, removed []string) error {
	return s.apply(formatLimits, set, removed)
}

func (s *Snapshot) apply(l limits, set map[string]uint64, removed []string) error {
	count := uint64(len(s.index))
	size := uint64(len(s.payload))
	for k := range set {
		if _, ok := s.index[k]; ok {
			continue
		}
		switch {
		case uint64(len(k)) > l.maxKeyLen:
			return &EncodeError{Key: k, Err: ErrKeyTooLong}
		case !utf8.ValidString(k):
			return &EncodeError{Key: k, Err: ErrInvalidUTF8}
		}
		count++
		size += uint64(minEntrySize + len(k))
	}
	switch {
	case count > l.maxKeys:
		return &EncodeError{Err: ErrTooManyKeys}
	case size > l.maxSize:
		return &EncodeError{Err: ErrTooLarge}
	}
	for _, k := range removed {
		if _, both := set[k]; both {
			return &EncodeError{Key: k, Err: ErrSetAndRemoved}
		}
	}
	if s.edit.buf != nil { // abandon the open edit; its buffer is the spare
		s.spare, s.edit.buf = s.edit.buf[:0], nil
	}
	for k, v := range set {
		if pos, ok := s.index[k]; ok {
			binary.LittleEndian.PutUint64(s.payload[pos:], v)
			continue
		}
		s.payload = binary.LittleEndian.AppendUint32(s.payload, uint32(len(k)))
		s.payload = append(s.payload, k...)
		s.index[k] = len(s.payload)
		s.payload = binary.LittleEndian.AppendUint64(s.payload, v)
	}
	binary.LittleEndian.PutUint32(s.payload, uint32(len(s.index)))
	drop := false
	for _, k := range removed {
		if _, ok := s.index[k]; ok {
			drop = true
			break
		}
	}
	if drop {
		e := s.Edit()
		for _, k := range removed {
			e.Delete(k)
		}
		e.Commit()
	}
	return nil
}
