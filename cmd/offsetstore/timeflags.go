package main

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/outboxkit/offsetstore/journal"
)

// dateTimeRE matches the date-times --to-datetime takes: RFC 3339 and the
// forms of Kafka's kafka-consumer-groups --to-datetime
// (YYYY-MM-DDTHH:mm:SS.sss with an optional zone: Z, +hh, +hhmm, +hh:mm),
// with seconds and the time optional.
var dateTimeRE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})` +
	`(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?` +
	`(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$`)

// parseDateTime reads a --to-datetime value. A value without a zone is
// UTC, as Kafka's tool reads it; a value without a time is midnight.
func parseDateTime(s string) (time.Time, error) {
	m := dateTimeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return time.Time{}, errors.New("want a date-time as 2026-12-01T09:00:00Z, 2026-12-01T09:00:00.000+01:00, 2026-12-01T09:00:00 (UTC) or 2026-12-01")
	}
	num := func(i int) int {
		if m[i] == "" {
			return 0
		}
		n, _ := strconv.Atoi(m[i]) // digits only, at most 4
		return n
	}
	year, month, day, hour, minute, sec := num(1), num(2), num(3), num(4), num(5), num(6)
	nsec := 0
	if f := m[7]; f != "" {
		nsec, _ = strconv.Atoi(f + strings.Repeat("0", 9-len(f)))
	}
	switch {
	case year < 1:
		return time.Time{}, errors.New("the year must be from 0001 to 9999")
	case month < 1 || month > 12:
		return time.Time{}, fmt.Errorf("month %02d: want 01 to 12", month)
	case hour > 23:
		return time.Time{}, fmt.Errorf("hour %02d: want 00 to 23", hour)
	case minute > 59:
		return time.Time{}, fmt.Errorf("minute %02d: want 00 to 59", minute)
	case sec > 59:
		return time.Time{}, fmt.Errorf("second %02d: want 00 to 59", sec)
	}
	if last := time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day(); day < 1 || day > last {
		return time.Time{}, fmt.Errorf("day %02d: %04d-%02d has days 01 to %02d", day, year, month, last)
	}
	loc := time.UTC
	if z := m[8]; z != "" && z != "Z" && z != "z" {
		digits := strings.ReplaceAll(z[1:], ":", "")
		zh, _ := strconv.Atoi(digits[:2])
		zm := 0
		if len(digits) == 4 {
			zm, _ = strconv.Atoi(digits[2:])
		}
		if zh > 23 || zm > 59 {
			return time.Time{}, fmt.Errorf("zone %s: want hours 00 to 23 and minutes 00 to 59", z)
		}
		off := zh*3600 + zm*60
		if z[0] == '-' {
			off = -off
		}
		loc = time.FixedZone(z, off)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if journal.ValidateTime(t) != nil {
		return time.Time{}, errors.New("outside the years 0001 to 9999 in UTC")
	}
	return t, nil
}

// isoDurationRE matches an ISO 8601 duration as Kafka's --by-duration
// takes it (java.time.Duration: days, hours, minutes, seconds with a
// fraction), letters in either case.
var isoDurationRE = regexp.MustCompile(`(?i)^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:[.,](\d{1,9}))?S)?)?$`)

// parseDuration reads a --by-duration value: a Go duration (90m, 1h30m,
// 36h, 1.5h) or an ISO 8601 duration as Kafka takes it (PT90M, P1DT12H,
// PT0.5S). It must not be negative and must fit in time.Duration (about
// 292 years).
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("a negative duration reaches into the future: want 0 or more")
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	m := isoDurationRE.FindStringSubmatch(s)
	if m == nil || strings.EqualFold(s, "P") || strings.HasSuffix(strings.ToUpper(s), "T") {
		return 0, errors.New("want a Go duration (90m, 1h30m, 36h) or ISO 8601 (PT90M, P1DT12H, PT0.5S)")
	}
	total := new(big.Int)
	add := func(digits string, unit time.Duration) {
		if digits == "" {
			return
		}
		n, _ := new(big.Int).SetString(digits, 10)
		total.Add(total, n.Mul(n, big.NewInt(int64(unit))))
	}
	add(m[1], 24*time.Hour)
	add(m[2], time.Hour)
	add(m[3], time.Minute)
	add(m[4], time.Second)
	if f := m[5]; f != "" {
		add(f+strings.Repeat("0", 9-len(f)), time.Nanosecond)
	}
	if !total.IsInt64() {
		return 0, errors.New("too long: at most about 292 years")
	}
	return time.Duration(total.Int64()), nil
}
