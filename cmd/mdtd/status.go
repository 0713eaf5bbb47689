package main

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/mdt"
)

// Status page constants.
const (
	// statusWindow is how far back the records/s chart reaches.
	statusWindow = time.Hour
	// statusSampleEvery is the chart's resolution.
	statusSampleEvery = 10 * time.Second
	// statusRefresh is how often the page refetches its fragment.
	statusRefresh = 5 * time.Second
	// idleProduct is Lustre's idle_time × idle_indexes eviction bound
	// (86400 × 2^32), as the changelog's GC applies it.
	idleProduct = 86400 << 32
)

// rateSample is the changelog's current index at a time.
type rateSample struct {
	at    time.Time
	index changelog.Index
}

// statusPage serves the metrics listener's "/": the MDT's changelog at a
// glance, rendered on the server (HTML and an SVG chart, no script from
// elsewhere). It samples the current index every statusSampleEvery for
// the chart; Close stops the sampler and waits for it.
type statusPage struct {
	md    *mdt.MDT
	clock func() time.Time

	mu struct {
		sync.Mutex
		samples []rateSample // oldest first, within statusWindow
	}
	stop chan struct{}
	wg   sync.WaitGroup
}

func newStatusPage(md *mdt.MDT, clock func() time.Time) *statusPage {
	p := &statusPage{md: md, clock: clock, stop: make(chan struct{})}
	p.sample()
	p.wg.Go(func() {
		t := time.NewTicker(statusSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	})
	return p
}

// Close stops the sampler.
func (p *statusPage) Close() {
	close(p.stop)
	p.wg.Wait()
}

func (p *statusPage) sample() {
	s := rateSample{at: p.clock(), index: p.md.Log().State().Current}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.samples = append(p.mu.samples, s)
	cut := 0
	for cut < len(p.mu.samples)-1 && s.at.Sub(p.mu.samples[cut].at) > statusWindow {
		cut++
	}
	p.mu.samples = p.mu.samples[cut:]
}

// consumerRow is one changelog user on the page.
type consumerRow struct {
	Name       string
	Cleared    uint64
	LagRecords uint64
	LagSeconds string
	Idle       string
	RiskPct    float64 // 0..100+, how close GC is to evicting it
	RiskText   string  // which limit, or why none applies
	RiskClass  string  // ok, warn, high
}

// statusView is what the fragment template renders.
type statusView struct {
	Device    string
	Now       string
	Current   uint64
	First     uint64
	Durable   uint64
	Retained  uint64
	MaxRecs   uint64
	RateNow   string
	GC        string
	Pubkey    string // checkpoint signing key (changelog_pubkey)
	Signed    uint64 // index the last signed checkpoint covers
	Consumers []consumerRow
	Chart     template.HTML
}

func (p *statusPage) view(ctx context.Context) statusView {
	l := p.md.Log()
	now := p.clock()
	st := l.State()
	set := l.Settings()
	v := statusView{
		Device: p.md.Device(), Now: now.UTC().Format("2006-01-02 15:04:05 UTC"),
		Current: uint64(st.Current), First: uint64(st.First), Durable: uint64(st.Durable),
		MaxRecs: set.MaxRecords,
	}
	if st.Current >= st.First {
		v.Retained = uint64(st.Current - st.First + 1)
	}
	v.Pubkey = "none (no signed checkpoints)"
	if k := l.PublicKey(); k != nil {
		v.Pubkey = changelog.FormatPublicKey(k)
	}
	v.Signed = uint64(l.CheckpointIndex())
	switch {
	case !set.GC:
		v.GC = "off (changelog_gc=0): no user is evicted"
	case set.FreeSpaceGC:
		v.GC = fmt.Sprintf("on: idle time %s, idle indexes %d, at %d retained records the most lagging user", set.MaxIdleTime, set.MaxIdleIndexes, set.MaxRecords)
	default:
		v.GC = fmt.Sprintf("on: idle time %s, idle indexes %d; space GC off", set.MaxIdleTime, set.MaxIdleIndexes)
	}

	samples := p.samples(now, st.Current)
	rates := rateSteps(samples)
	if n := len(rates); n > 0 {
		v.RateNow = formatRate(rates[n-1].rate)
	} else {
		v.RateNow = "0"
	}
	v.Chart = rateChart(now, rates)

	users := l.Users()
	lowest := changelog.Index(math.MaxUint64)
	for _, u := range users {
		if u.Index < st.Current {
			lowest = min(lowest, u.Index)
		}
	}
	for _, u := range users {
		row := consumerRow{Name: u.DisplayName(), Cleared: uint64(u.Index), Idle: formatSeconds(now.Sub(u.Time))}
		if u.Index < st.Current {
			row.LagRecords = uint64(st.Current - u.Index)
		}
		row.LagSeconds = "0"
		if row.LagRecords > 0 {
			row.LagSeconds = "?"
			recs, _, err := l.Read(ctx, store.ReadOptions{Start: u.Index + 1, Limit: 1})
			if err == nil && len(recs) == 1 {
				row.LagSeconds = formatSeconds(now.Sub(recs[0].Time))
			}
		}
		row.RiskPct, row.RiskText = gcRisk(set, u, row.LagRecords, now, u.Index == lowest, v.Retained)
		switch {
		case row.RiskPct >= 80:
			row.RiskClass = "high"
		case row.RiskPct >= 50:
			row.RiskClass = "warn"
		default:
			row.RiskClass = "ok"
		}
		v.Consumers = append(v.Consumers, row)
	}
	return v
}

// gcRisk says how close GC is to evicting u, in percent of the nearest
// limit (100: evicted at the next GC run), and which limit that is.
func gcRisk(set store.Settings, u changelog.User, lag uint64, now time.Time, mostLagging bool, retained uint64) (float64, string) {
	if !set.GC {
		return 0, "GC off"
	}
	if lag == 0 {
		return 0, "caught up: never evicted"
	}
	secs := max(now.Sub(u.Time).Seconds(), 0)
	pct, what := 0.0, ""
	consider := func(r float64, name string) {
		if r*100 > pct {
			pct, what = r*100, name
		}
	}
	if set.MaxIdleIndexes > 0 {
		consider(float64(lag)/float64(set.MaxIdleIndexes), "changelog_max_idle_indexes")
	}
	if set.MaxIdleTime > 0 {
		consider(secs/set.MaxIdleTime.Seconds(), "changelog_max_idle_time")
	}
	consider(secs*float64(lag)/float64(idleProduct), "idle time × indexes")
	if set.FreeSpaceGC && mostLagging && set.MaxRecords > 0 {
		consider(float64(retained)/float64(set.MaxRecords), "changelog_max_records")
	}
	if what == "" {
		what = "changelog_max_idle_indexes"
	}
	return pct, what
}

// samples returns the chart's samples with a last one for now.
func (p *statusPage) samples(now time.Time, cur changelog.Index) []rateSample {
	p.mu.Lock()
	out := append([]rateSample(nil), p.mu.samples...)
	p.mu.Unlock()
	if n := len(out); n == 0 || now.After(out[n-1].at) {
		out = append(out, rateSample{at: now, index: cur})
	}
	return out
}

// rateStep is the average records/s between two samples.
type rateStep struct {
	from, to time.Time
	rate     float64
}

func rateSteps(s []rateSample) []rateStep {
	var out []rateStep
	for i := 1; i < len(s); i++ {
		d := s[i].at.Sub(s[i-1].at).Seconds()
		if d <= 0 {
			continue
		}
		r := 0.0
		if s[i].index > s[i-1].index {
			r = float64(s[i].index-s[i-1].index) / d
		}
		out = append(out, rateStep{from: s[i-1].at, to: s[i].at, rate: r})
	}
	return out
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// rateChart draws records/s over the last statusWindow as an SVG step
// line: x is time (now at the right edge), y is records/s from 0.
func rateChart(now time.Time, steps []rateStep) template.HTML {
	const (
		w, h              = 720, 200
		left, right, top  = 56, 12, 12
		bottom            = 28
		plotW, plotH      = w - left - right, h - top - bottom
		gridLines         = 4
		windowMinutes     = int(statusWindow / time.Minute)
		minuteTickEveryMn = 10
	)
	peak := 0.0
	for _, s := range steps {
		peak = max(peak, s.rate)
	}
	ymax := niceCeil(peak)
	start := now.Add(-statusWindow)
	x := func(t time.Time) float64 {
		f := t.Sub(start).Seconds() / statusWindow.Seconds()
		return left + math.Min(math.Max(f, 0), 1)*plotW
	}
	y := func(r float64) float64 { return top + plotH - r/ymax*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="rate-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="changelog records per second over the last hour">`, w, h, w, h)
	b.WriteString(`<title>changelog records per second, last hour</title>`)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="plot"/>`, left, top, plotW, plotH)
	for i := 0; i <= gridLines; i++ {
		r := ymax * float64(i) / gridLines
		yy := y(r)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, left, left+plotW, yy, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="ylabel" text-anchor="end">%s</text>`, left-6, yy+4, formatRate(r))
	}
	for m := 0; m <= windowMinutes; m += minuteTickEveryMn {
		xx := x(start.Add(time.Duration(m) * time.Minute))
		label := fmt.Sprintf("-%d min", windowMinutes-m)
		if m == windowMinutes {
			label = "now"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="xlabel" text-anchor="middle">%s</text>`, xx, h-8, label)
	}
	if len(steps) > 0 {
		var pts []string
		for _, s := range steps {
			if s.to.Before(start) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.from), y(s.rate)), fmt.Sprintf("%.1f,%.1f", x(s.to), y(s.rate)))
		}
		fmt.Fprintf(&b, `<polyline class="rate" points="%s" data-points="%d"/>`, strings.Join(pts, " "), len(pts))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="unit">records/s (peak %s)</text>`, left+6, top+14, formatRate(peak))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func formatRate(r float64) string {
	switch {
	case r == 0:
		return "0"
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// formatSeconds prints a duration in whole seconds, with a larger unit
// beside it past a minute: "42", "3600 (1h0m0s)".
func formatSeconds(d time.Duration) string {
	s := max(int64(d/time.Second), 0)
	if s < 60 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%d (%s)", s, (time.Duration(s) * time.Second).String())
}

var statusFragment = template.Must(template.New("fragment").Parse(`<section id="summary">
<table class="kv">
<tr><th>device</th><td id="device">{{.Device}}</td></tr>
<tr><th>current index</th><td id="current">{{.Current}}</td></tr>
<tr><th>first retained index</th><td id="first">{{.First}}</td></tr>
<tr><th>durable index</th><td>{{.Durable}}</td></tr>
<tr><th>retained records</th><td>{{.Retained}} of at most {{.MaxRecs}}</td></tr>
<tr><th>records/s (last {{"10 s"}})</th><td id="rate-now">{{.RateNow}}</td></tr>
<tr><th>GC</th><td>{{.GC}}</td></tr>
<tr><th>checkpoint signing key</th><td id="pubkey">{{.Pubkey}}</td></tr>
<tr><th>last signed checkpoint covers</th><td id="signed">{{.Signed}}</td></tr>
</table>
</section>
<section>
<h2>Records per second, last hour</h2>
{{.Chart}}
</section>
<section>
<h2>Consumers</h2>
{{if .Consumers}}<table id="consumers">
<thead><tr><th>user</th><th>cleared to</th><th>lag (records)</th><th>lag (s)</th><th>idle (s)</th><th>GC risk</th></tr></thead>
<tbody>
{{range .Consumers}}<tr class="consumer" data-user="{{.Name}}">
<td class="user">{{.Name}}</td><td class="cleared">{{.Cleared}}</td><td class="lag">{{.LagRecords}}</td><td class="lag-seconds">{{.LagSeconds}}</td><td class="idle">{{.Idle}}</td>
<td class="risk {{.RiskClass}}"><span class="bar"><span style="width: {{printf "%.0f" .RiskPct}}%"></span></span> {{printf "%.1f" .RiskPct}}% <small>{{.RiskText}}</small></td>
</tr>
{{end}}</tbody>
</table>{{else}}<p id="consumers-none">No changelog user is registered: changelogs are off.</p>{{end}}
</section>
<p class="foot">updated {{.Now}}; refreshed every {{"5 s"}} · <a href="/metrics">/metrics</a></p>
`))

var statusShell = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Device}} changelog · mdtd</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="{{.Refresh}}"></noscript>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2530;background:#fbfbfc}
h1{font-size:20px;margin:0 0 .6em}h2{font-size:15px;margin:1.2em 0 .4em}
table{border-collapse:collapse}th,td{padding:3px 10px;text-align:left;border-bottom:1px solid #e3e6ea}
table.kv th{font-weight:500;color:#56606c;white-space:nowrap}#consumers td,#consumers th{white-space:nowrap}#consumers td{font-variant-numeric:tabular-nums}
.bar{display:inline-block;width:80px;height:8px;background:#e3e6ea;vertical-align:middle;border-radius:4px;overflow:hidden}
.bar span{display:block;height:100%;max-width:100%;background:#3a9e5f}
.warn .bar span{background:#d9a21b}.high .bar span{background:#c8412f}
svg .plot{fill:#fff;stroke:#c9ced6}svg .grid{stroke:#eceef1}svg .rate{fill:none;stroke:#2f6fd0;stroke-width:2}
svg text{font:11px system-ui,sans-serif;fill:#56606c}
.foot{color:#7a838e;font-size:12px}small{color:#7a838e}
</style></head>
<body>
<h1>mdtd · {{.Device}} changelog</h1>
<div id="status">{{.Fragment}}</div>
<script>
(function(){
  var el=document.getElementById("status");
  function tick(){
    fetch("/status/fragment",{cache:"no-store"}).then(function(r){
      if(!r.ok)throw new Error(r.status);return r.text();
    }).then(function(t){el.innerHTML=t;el.dataset.refreshed=String(Date.now());}).catch(function(){});
  }
  setInterval(tick,{{.RefreshMillis}});
})();
</script>
</body></html>
`))

func (p *statusPage) fragment(r *http.Request) (template.HTML, error) {
	var b strings.Builder
	if err := statusFragment.Execute(&b, p.view(r.Context())); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil
}

// ServeHTTP serves "/" (the page) and "/status/fragment" (what the page
// refetches).
func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path != "/" && r.URL.Path != "/status/fragment" {
		http.NotFound(w, r)
		return
	}
	frag, err := p.fragment(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Nothing from elsewhere: the page's own inline style and script, and
	// fetches back to this listener.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'")
	if r.URL.Path == "/status/fragment" {
		fmt.Fprint(w, frag)
		return
	}
	_ = statusShell.Execute(w, map[string]any{
		"Device": p.md.Device(), "Fragment": frag,
		"Refresh": int(statusRefresh / time.Second), "RefreshMillis": int(statusRefresh / time.Millisecond),
	})
}
