package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// scrape returns the metrics page of addr.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metricValue returns the value of the series line that starts with
// series (name and labels exactly as exposed).
func metricValue(t *testing.T, page, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no series %s", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMetricsDashboards checks the series a Grafana board needs: gRPC
// server metrics per method and code, Pebble's health, and changelog
// counters that exist (at 0) before anything happened.
func TestMetricsDashboards(t *testing.T) {
	dir := shortTemp(t)
	_, m, _ := start(t, "--data", filepath.Join(dir, "data"), "--socket", filepath.Join(dir, "s.sock"), "--metrics", "127.0.0.1:0")
	page := scrape(t, m[4])
	var atStart []string
	for _, r := range store.EvictReasons {
		atStart = append(atStart, `mdt_changelog_users_evicted_total{reason="`+r+`"}`)
	}
	for typ := range changelog.NumTypes {
		atStart = append(atStart, `mdt_changelog_records_appended_total{type="`+changelog.Type(typ).String()+`"}`)
	}
	for _, s := range append(atStart,
		`mdt_changelog_records_appended_total{type="CREAT"}`,
		`mdt_changelog_records_appended_total{type="GXATR"}`,
		`mdt_changelog_records_purged_total`,
		`mdtd_tcp_insecure`,
		`mdt_changelog_checkpoints_total{kind="periodic"}`,
		`mdt_changelog_checkpoints_total{kind="rotation"}`,
		`grpc_server_started_total{grpc_method="Create",grpc_service="lustre.mdt.v1.NamespaceService",grpc_type="unary"}`,
		`grpc_server_handled_total{grpc_code="PermissionDenied",grpc_method="Clear",grpc_service="lustre.changelog.v1.ChangelogService",grpc_type="unary"}`,
		`grpc_server_started_total{grpc_method="Read",grpc_service="lustre.changelog.v1.ChangelogService",grpc_type="server_stream"}`,
	) {
		if v := metricValue(t, page, s); v != 0 {
			t.Errorf("%s = %v at start, want 0", s, v)
		}
	}

	// The checkpoint signing key, as changelog_pubkey prints it.
	if !regexp.MustCompile(`(?m)^mdt_changelog_signing_key_info\{device="lustre-MDT0000",pubkey="ed25519:[A-Za-z0-9+/]{43}="\} 1$`).MatchString(page) {
		t.Error("no mdt_changelog_signing_key_info series")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial("unix:" + m[3])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte("f" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("f0")}); err == nil {
		t.Fatal("mkdir over a file succeeded")
	}
	page = scrape(t, m[4])
	create := `grpc_method="Create",grpc_service="lustre.mdt.v1.NamespaceService",grpc_type="unary"`
	for series, want := range map[string]float64{
		`grpc_server_started_total{` + create + `}`:                3,
		`grpc_server_handled_total{grpc_code="OK",` + create + `}`: 3,
		`grpc_server_handling_seconds_count{` + create + `}`:       3,
		`grpc_server_handled_total{grpc_code="AlreadyExists",grpc_method="Mkdir",grpc_service="lustre.mdt.v1.NamespaceService",grpc_type="unary"}`: 1,
	} {
		if v := metricValue(t, page, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if !strings.Contains(page, `grpc_server_handling_seconds_bucket{`+create+`,le="0.0002"}`) {
		t.Error("no latency histogram buckets for Create")
	}
	if v := metricValue(t, page, "mdt_pebble_wal_fsync_duration_seconds_count"); v < 3 {
		t.Errorf("WAL fsyncs counted: %v, want >= 3 (one per create)", v)
	}
	if v := metricValue(t, page, `mdt_pebble_wal_fsync_duration_seconds_bucket{le="+Inf"}`); v < 3 {
		t.Errorf("WAL fsync +Inf bucket %v", v)
	}
	if v := metricValue(t, page, "mdt_pebble_disk_usage_bytes"); v <= 0 {
		t.Errorf("disk usage %v", v)
	}
	for _, s := range []string{"mdt_pebble_compaction_debt_bytes", "mdt_pebble_l0_files", "mdt_pebble_l0_sublevels", "mdt_pebble_compactions_in_progress"} {
		metricValue(t, page, s)
	}
}

// TestMetricsDedupSuppressed: mdt_changelog_dedup_suppressed_total counts
// the access records changelog_dedup_window suppressed (0 at start).
func TestMetricsDedupSuppressed(t *testing.T) {
	dir := shortTemp(t)
	_, m, _ := start(t, "--data", filepath.Join(dir, "data"), "--socket", filepath.Join(dir, "s.sock"), "--metrics", "127.0.0.1:0")
	const series = "mdt_changelog_dedup_suppressed_total"
	if v := metricValue(t, scrape(t, m[4]), series); v != 0 {
		t.Fatalf("%s = %v at start", series, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial("unix:" + m[3])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(ctx, m[1], "opens", "OPEN"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetParam(ctx, "mdd.*.changelog_dedup_window", "60"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte("f")}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		o, err := c.Namespace.Open(ctx, &mdtv1.OpenRequest{Path: []byte("f"), Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_READ)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Namespace.Close(ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()}); err != nil {
			t.Fatal(err)
		}
	}
	if v := metricValue(t, scrape(t, m[4]), series); v != 4 {
		t.Fatalf("%s = %v after 5 identical opens, want 4", series, v)
	}
}

// TestGrafanaDashboard: every metric dist/grafana/mdtd-dashboard.json
// queries is one a live mdtd exposes, with the labels its legends use.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../dist/grafana/mdtd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr, LegendFormat string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	dir := shortTemp(t)
	_, m, _ := start(t, "--data", filepath.Join(dir, "data"), "--metrics", "127.0.0.1:0")
	c, err := client.Dial("unix:" + m[3])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(context.Background(), m[1], "", ""); err != nil {
		t.Fatal(err)
	}
	page := scrape(t, m[4])
	nameRE := regexp.MustCompile(`\b(?:mdt|grpc_server)_[a-z0-9_]+`)
	labelRE := regexp.MustCompile(`\{\{(\w+)\}\}`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range nameRE.FindAllString(tg.Expr, -1) {
				n++
				base := name
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(name, suf); ok && strings.Contains(page, "# TYPE "+b+" histogram") {
						base = b
					}
				}
				if !strings.Contains(page, "# TYPE "+base+" ") {
					t.Errorf("panel %q queries %s, which mdtd does not expose", p.Title, name)
					continue
				}
				for _, l := range labelRE.FindAllStringSubmatch(tg.LegendFormat, -1) {
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{[^}]*\b` + l[1] + `="`).MatchString(page) {
						t.Errorf("panel %q: %s has no label %s", p.Title, name, l[1])
					}
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("dashboard queries only %d metrics", n)
	}
}
