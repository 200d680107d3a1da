//go:build tools

// Package tools pins the promtool command in this module's go.mod and go.sum; it is never compiled.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
