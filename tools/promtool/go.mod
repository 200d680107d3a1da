// Prometheus's promtool, built by tools/provision.sh (`make tools`) for `promtool check rules` and
// `promtool test rules` over the chart's alerts. Service-discovery plugins are left out (tag remove_all_sd).
// go.sum covers only that build: don't run `go mod tidy` here (it pulls in every plugin's modules); after changing
// the version, refresh it with `: > go.sum && GOFLAGS=-mod=mod go list -deps -tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool`.
module github.com/cimi-operator/cimi-operator/tools/promtool

go 1.26.7

require github.com/prometheus/prometheus v0.316.0
