package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/api/client"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// statusServer starts mdtd with metrics, two changelog users (one
// caught up, one lagging) and 20 records; it returns the metrics address.
func statusServer(t *testing.T) string {
	t.Helper()
	dir := shortTemp(t)
	_, m, _ := start(t, "--data", filepath.Join(dir, "data"), "--socket", filepath.Join(dir, "s.sock"), "--metrics", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial("unix:" + m[3])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(ctx, m[1], "indexer", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, m[1], "backup", ""); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("d%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Clear(ctx, m[1], "cl1", 20); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Clear(ctx, m[1], "cl2", 5); err != nil {
		t.Fatal(err)
	}
	return m[4]
}

func get(t *testing.T, url string) (string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b), resp.Header
}

// TestStatusPageHTML checks the page as served: summary, one row per
// consumer with its point and lag, the SVG chart, and nothing loaded
// from elsewhere.
func TestStatusPageHTML(t *testing.T) {
	addr := statusServer(t)
	page, hdr := get(t, "http://"+addr+"/")
	for _, want := range []string{
		`<td id="device">lustre-MDT0000</td>`,
		`<td id="current">20</td>`,
		`<td id="first">6</td>`,
		`<tr class="consumer" data-user="cl1-indexer">`,
		`<td class="cleared">20</td><td class="lag">0</td><td class="lag-seconds">0</td>`,
		`<tr class="consumer" data-user="cl2-backup">`,
		`<td class="cleared">5</td><td class="lag">15</td>`,
		`caught up: never evicted`,
		`<td id="pubkey">ed25519:`,
		`<svg id="rate-chart"`,
		`<polyline class="rate"`,
		`fetch("/status/fragment"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if regexp.MustCompile(`(?i)<script[^>]+src=|<link[^>]+href=|https?://(?:[^"]*w3\.org)`).MatchString(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")) {
		t.Error("page loads something from elsewhere")
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	frag, _ := get(t, "http://"+addr+"/status/fragment")
	if strings.Contains(frag, "<html") || !strings.Contains(frag, `data-user="cl2-backup"`) {
		t.Errorf("fragment: %s", frag)
	}
	resp, err := http.Get("http://" + addr + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing: %s", resp.Status)
	}
}

// chromium finds Debian's chromium; the test says loudly when it is not
// there (CI installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIP: no chromium on PATH (apt-get install -y chromium); the status page was not checked in a browser")
	return ""
}

func runChromium(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, chromium(t), append(base, args...)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return string(out)
}

// TestStatusPageChromium loads the page in headless Chromium: the DOM it
// builds has the consumer rows and the chart, and the inline script has
// refetched the fragment (data-refreshed) without a reload. With
// FIDLOG_STATUS_SCREENSHOT=FILE it also writes a screenshot (README's).
func TestStatusPageChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser")
	}
	chromium(t)
	addr := statusServer(t)
	url := "http://" + addr + "/"
	dom := runChromium(t, "--virtual-time-budget=12000", "--dump-dom", url)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<div id="status" data-refreshed="\d+">`),
		regexp.MustCompile(`<tr class="consumer" data-user="cl1-indexer">`),
		regexp.MustCompile(`<tr class="consumer" data-user="cl2-backup">\s*<td class="user">cl2-backup</td><td class="cleared">5</td><td class="lag">15</td>`),
		regexp.MustCompile(`<svg id="rate-chart"[^>]*>`),
		regexp.MustCompile(`<polyline class="rate" points="[0-9., ]+" data-points="[1-9]\d*"`),
	} {
		if !want.MatchString(dom) {
			t.Errorf("browser DOM lacks %s:\n%s", want, dom)
		}
	}
	shot := os.Getenv("FIDLOG_STATUS_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "status.png")
	}
	runChromium(t, "--hide-scrollbars", "--window-size=820,760", "--screenshot="+shot, url)
	fi, err := os.Stat(shot)
	if err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v %v", shot, fi, err)
	}
}
