//go:build tools

// Package tools pins istio's pilot-agent for go build.
package tools

import _ "istio.io/istio/pilot/cmd/pilot-agent"
