// Prometheus's promtool, built by tools/provision.sh (`make tools`) for `promtool check rules` and
// `promtool test rules` over the chart's alerts. Service-discovery plugins are left out (tag remove_all_sd).
module github.com/cimi-operator/cimi-operator/tools/promtool

go 1.26.7

require github.com/prometheus/prometheus v0.316.0
