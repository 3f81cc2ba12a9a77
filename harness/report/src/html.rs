//! `index.html`: one self-contained page (inline CSS, a little inline JS for filtering, inline
//! SVG; no external assets). Everything is rendered on the server side, so the page reads the
//! same with scripts off; the script only filters, expands and collapses.

use std::fmt::Write as _;

use ssm_scenario::check::Verdict;

use crate::model::{Entry, Run};
use crate::summary::{Summary, Witness};
use crate::text::{self, esc};
use crate::{msd, WIRE_LOG_LIMIT};

const CSS: &str = r#"
:root{--ink:#1f2933;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--pass:#2d6a4f;--fail:#c62828;--error:#8e24aa;--skip:#6b7280;--xfail:#b26a00;--ns:#a16207}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:16px 24px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:24px 0 8px}
h3{font-size:13px;margin:14px 0 4px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
main{padding:0 24px 40px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:#fff;border:1px solid var(--line);border-radius:4px;padding:8px;overflow:auto;white-space:pre-wrap;word-break:break-word;margin:0}
.run{color:var(--muted);margin:0 0 10px}
.run b{color:var(--ink);font-weight:600}
.totals{display:flex;flex-wrap:wrap;gap:8px}
.tot{border-radius:4px;padding:4px 10px;color:#fff;font-weight:600}
.v{display:inline-block;min-width:78px;text-align:center;border-radius:3px;padding:1px 6px;color:#fff;font-size:11px;font-weight:700}
.v-PASS{background:var(--pass)}.v-FAIL{background:var(--fail)}.v-ERROR{background:var(--error)}
.v-SKIP{background:var(--skip)}.v-XFAIL{background:var(--xfail)}.v-NON-STRICT{background:var(--ns)}
.o-fail{color:var(--fail);font-weight:600}.o-non_strict{color:var(--ns);font-weight:600}.o-pass{color:var(--pass)}
.o-not_exercised,.o-not_covered{color:var(--muted)}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}
.filters{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:0 0 8px}
.filters input[type=search]{padding:5px 8px;min-width:320px;border:1px solid #cbd5e1;border-radius:4px}
.filters label{white-space:nowrap}
button{border:1px solid #cbd5e1;background:#fff;border-radius:4px;padding:4px 10px;cursor:pointer}
details.scenario{background:#fff;border:1px solid var(--line);border-radius:6px;margin:0 0 8px}
details.scenario>summary{padding:8px 12px;cursor:pointer}
details.scenario>.body{padding:0 14px 14px}
.headline{font-weight:600}
.muted,.note{color:var(--muted)}
.msd-wrap{overflow-x:auto;background:#fff;border:1px solid var(--line);border-radius:4px}
table.log td{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;padding:1px 8px}
table.log tr.k-fault td,table.log tr.k-faulted td,table.log tr.k-violation td{color:var(--fail)}
table.log tr.k-lost td{color:var(--muted);text-decoration:line-through}
[hidden]{display:none!important}
"#;

const JS: &str = r#"
(function(){
  var q=document.getElementById('filter');
  var boxes=Array.prototype.slice.call(document.querySelectorAll('input[data-toggle]'));
  var items=Array.prototype.slice.call(document.querySelectorAll('[data-verdict][data-search]'));
  var shown=document.getElementById('shown');
  function apply(){
    var text=q.value.toLowerCase().trim();
    var on={};boxes.forEach(function(b){on[b.value]=b.checked;});
    var n=0;
    items.forEach(function(el){
      var ok=on[el.getAttribute('data-verdict')]!==false&&(!text||el.getAttribute('data-search').indexOf(text)>=0);
      el.hidden=!ok;
      if(ok&&el.tagName==='TR'){n++;}
    });
    shown.textContent=n;
  }
  q.addEventListener('input',apply);
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  function all(open){document.querySelectorAll('details.scenario').forEach(function(d){if(!d.hidden){d.open=open;}});}
  document.getElementById('expand').addEventListener('click',function(){all(true);});
  document.getElementById('collapse').addEventListener('click',function(){all(false);});
  function reveal(){
    var id=decodeURIComponent(location.hash.slice(1));
    var d=id&&document.getElementById(id);
    if(d&&d.tagName==='DETAILS'){d.open=true;d.scrollIntoView();}
  }
  window.addEventListener('hashchange',reveal);
  reveal();
  apply();
  document.body.setAttribute('data-ready','1');
})();
"#;

const ORDER: [Verdict; 6] =
    [Verdict::Fail, Verdict::Error, Verdict::NonStrict, Verdict::Xfail, Verdict::Skip, Verdict::Pass];

fn verdict_badge(v: Verdict) -> String {
    format!(r#"<span class="v v-{0}">{0}</span>"#, v.name())
}

/// Lower-case text the filter box matches against.
fn search_text(e: &Entry) -> String {
    let r = &e.result;
    let reqs: Vec<String> = r.requirements.iter().map(|q| q.to_string()).collect();
    esc(&format!("{} {} {} {} {}", r.id, r.title, r.tags.join(" "), reqs.join(" "), r.verdict.name())
        .to_lowercase())
}

fn header(run: &Run<'_>, s: &Summary, h: &mut String) {
    let info = run.info;
    let _ = write!(
        h,
        r#"<header><h1>ssm-harness report</h1><p class="run">run <b class="mono">{}</b> · implementation <b>{}</b> · backend <b>{}</b> · under test <b>{}</b> · seed <b>{}</b> · strict <b>{}</b> · harness <b>{}</b> · {} scenarios in <b>{}</b></p><div class="totals">"#,
        esc(run.run_id),
        esc(&info.imp),
        esc(info.backend.name()),
        esc(info.under_test.map_or("both roles", |r| r.name())),
        info.seed,
        if info.strict { "yes" } else { "no" },
        esc(info.harness_version),
        run.scenarios(),
        esc(&text::secs(run.wall_ms)),
    );
    let t = &s.totals;
    for (v, n) in [
        (Verdict::Pass, t.passed),
        (Verdict::Fail, t.failed),
        (Verdict::NonStrict, t.non_strict),
        (Verdict::Xfail, t.xfail),
        (Verdict::Skip, t.skipped),
        (Verdict::Error, t.errors),
    ] {
        let _ = write!(h, r#"<span class="tot v-{0}" data-total="{0}">{1} {0}</span>"#, v.name(), n);
    }
    h.push_str("</div></header>");
}

fn scenario_table(run: &Run<'_>, h: &mut String) {
    h.push_str(r#"<h2>Scenarios (<span id="shown">"#);
    let _ = write!(h, "{}</span> of {})</h2>", run.scenarios(), run.scenarios());
    h.push_str(r#"<div class="filters"><input id="filter" type="search" placeholder="filter by id, title, tag, requirement, verdict…" aria-label="filter scenarios">"#);
    for v in ORDER {
        let _ = write!(
            h,
            r#"<label><input type="checkbox" data-toggle value="{0}" checked> {0}</label>"#,
            v.name()
        );
    }
    h.push_str(r#"<button id="expand" type="button">expand all</button><button id="collapse" type="button">collapse all</button></div>"#);
    h.push_str(r#"<table id="scenario-table"><thead><tr><th>verdict</th><th>scenario</th><th>title</th><th>headline</th><th>tags</th><th>virtual</th><th>wall</th></tr></thead><tbody>"#);
    for e in run.entries {
        let r = &e.result;
        let _ = write!(
            h,
            r##"<tr data-verdict="{}" data-search="{}"><td>{}</td><td><a class="mono" href="#s-{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class="num">{} ms</td><td class="num">{} ms</td></tr>"##,
            r.verdict.name(),
            search_text(e),
            verdict_badge(r.verdict),
            esc(&r.id),
            esc(&r.id),
            esc(&r.title),
            esc(&text::clip(r.reason.as_deref().unwrap_or(""), 160)),
            esc(&r.tags.join(", ")),
            r.virtual_ms,
            r.wall_ms,
        );
    }
    h.push_str("</tbody></table>");
}

fn witness_block(w: &Witness, h: &mut String) {
    let _ = write!(h, "<h3>Witness</h3><pre>{}</pre>", esc(&text::witness(w)));
}

fn requirement_table(s: &crate::summary::ScenarioSummary, h: &mut String) {
    if s.requirement_results.is_empty() {
        return;
    }
    h.push_str("<h3>Requirements</h3><table><thead><tr><th>requirement</th><th>level</th><th>cited</th><th>outcome</th><th>at</th><th>detail</th></tr></thead><tbody>");
    for r in &s.requirement_results {
        let _ = write!(
            h,
            r#"<tr><td class="mono">{}</td><td>{}</td><td>{}</td><td class="o-{}">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            r.req,
            r.level,
            if r.cited { "yes" } else { "no" },
            esc(&r.outcome),
            esc(&r.outcome.replace('_', " ")),
            r.at.map(text::ms).unwrap_or_default(),
            esc(&r.detail),
        );
    }
    h.push_str("</tbody></table>");
}

fn wire_log(e: &Entry, h: &mut String) {
    let _ = write!(
        h,
        r#"<details class="wirelog"><summary>Wire log ({} records{})</summary>"#,
        e.records,
        if e.records > e.log.len() { format!(", first {} shown", e.log.len()) } else { String::new() }
    );
    if e.log.is_empty() {
        h.push_str(r#"<p class="note">The trace is empty.</p>"#);
    } else {
        h.push_str(r#"<table class="log"><thead><tr><th>#</th><th>virtual time</th><th>what</th><th>summary</th></tr></thead><tbody>"#);
        for (i, r) in e.log.iter().enumerate() {
            let k = text::kind(&r.what);
            let _ = write!(
                h,
                r#"<tr class="k-{k}"><td class="num">{i}</td><td class="num">{}</td><td>{k}</td><td>{}</td></tr>"#,
                esc(&text::ms(r.t)),
                esc(&text::clip(&text::describe(&r.what), 400)),
            );
        }
        h.push_str("</tbody></table>");
    }
    if e.records > e.log.len() {
        let _ = write!(
            h,
            r#"<p class="note">Only the first {WIRE_LOG_LIMIT} of {} records are shown; the whole trace is in <a href="{}">{}</a>.</p>"#,
            e.records,
            esc(&e.trace_file),
            esc(&e.trace_file)
        );
    } else {
        let _ = write!(h, r#"<p class="note">Trace: <a href="{0}">{0}</a></p>"#, esc(&e.trace_file));
    }
    h.push_str("</details>");
}

fn scenario_section(e: &Entry, s: &crate::summary::ScenarioSummary, h: &mut String) {
    let r = &e.result;
    let open = if r.verdict == Verdict::Fail { " open" } else { "" };
    let _ = write!(
        h,
        r#"<details class="scenario" id="s-{}" data-verdict="{}" data-search="{}"{open}><summary>{} <b class="mono">{}</b> — {}</summary><div class="body">"#,
        esc(&r.id),
        r.verdict.name(),
        search_text(e),
        verdict_badge(r.verdict),
        esc(&r.id),
        esc(&r.title),
    );
    if let Some(reason) = &r.reason {
        let _ = write!(h, r#"<p class="headline">{}</p>"#, esc(reason));
    }
    let _ = write!(
        h,
        r#"<p class="muted">file <span class="mono">{}</span> · under test <b>{}</b> ({}) · seed {} · {} ms virtual, {} ms wall · cites {}</p>"#,
        esc(&s.file),
        esc(&s.under_test),
        esc(&s.imp),
        r.seed,
        r.virtual_ms,
        r.wall_ms,
        esc(&s.requirements.iter().map(|q| q.to_string()).collect::<Vec<_>>().join(", ")),
    );
    if let Some(w) = &s.witness {
        witness_block(w, h);
    }
    if let Some(j) = &r.judgement {
        if !j.problems.is_empty() {
            h.push_str("<h3>Problems</h3><ul>");
            for p in &j.problems {
                let _ = write!(h, "<li>{}</li>", esc(p));
            }
            h.push_str("</ul>");
        }
    }
    let _ = write!(h, r#"<h3>Replay</h3><pre class="replay"><code>{}</code></pre>"#, esc(&r.replay));
    if let Some(w) = &e.msd {
        h.push_str("<h3>Message sequence around the first failure</h3>");
        let _ = write!(
            h,
            r#"<p class="note">Records {}–{} of {}: arrows are frames written to the service, delivered by it or sent by it; ✕ marks a lost frame; red marks faults and violations.</p>"#,
            w.first,
            (w.first + w.records.len()).saturating_sub(1),
            e.records
        );
        h.push_str(r#"<div class="msd-wrap">"#);
        h.push_str(&msd::render(&r.id, w, e.records));
        h.push_str("</div>");
    }
    requirement_table(s, h);
    wire_log(e, h);
    h.push_str("</div></details>");
}

fn coverage_table(s: &Summary, h: &mut String) {
    h.push_str(r#"<h2>Requirement coverage</h2><table id="coverage"><thead><tr><th>requirement</th><th>level</th><th>outcome</th><th>scenarios</th><th>statement</th></tr></thead><tbody>"#);
    for (req, c) in &s.requirements {
        let links: Vec<String> = c
            .scenarios
            .iter()
            .map(|id| format!(r##"<a class="mono" href="#s-{0}">{0}</a>"##, esc(id)))
            .collect();
        let _ = write!(
            h,
            r#"<tr><td class="mono">{req}</td><td>{}</td><td class="o-{}">{}</td><td>{}</td><td>{}</td></tr>"#,
            c.level,
            c.outcome.name(),
            c.outcome.name().replace('_', " "),
            links.join(" "),
            esc(c.statement.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody></table>");
}

pub(crate) fn render(run: &Run<'_>, s: &Summary) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>ssm-harness report {}</title><style>{CSS}</style></head><body>"#,
        esc(run.run_id)
    );
    header(run, s, &mut h);
    h.push_str("<main>");
    scenario_table(run, &mut h);
    h.push_str("<h2>Details</h2>");
    for (e, sc) in run.entries.iter().zip(&s.scenarios) {
        scenario_section(e, sc, &mut h);
    }
    coverage_table(s, &mut h);
    h.push_str("</main>");
    let _ = writeln!(h, "<script>{JS}</script></body></html>");
    h
}
