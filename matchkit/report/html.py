"""The review workbench: one self-contained HTML page (``verify --report REPORT.html``), Chinese by default.

What it holds: the summary (status, review groups, deductions with claimed vs allowed, reasons, how subjects were
matched, fuzzy scores — inline SVG charts) and the worklist: every line that is not ``verified``, grouped by what
the reviewer must do, each with its reasons explained (text, evidence, rule, policy basis, suggested check), claimed
vs allowed and months. The worklist is sortable and filterable in the page (a small inline script; no external
script, font, style sheet or URL of any kind); the address may name a view: ``report.html#g=evidence&r=NOT_ENROLLED&s=claimed&d=1``
opens a group (``g``, ``*`` for all) filtered by a reason (``r``) and sorted by a column (``s``, ``d=1`` ascending);
``c=CLAIM_ID`` finds a claim (with ``g=*``) and opens its details. Every text comes from the reason catalogue.

At scale: the worklist embeds at most ``worklist_limit`` lines per group (those with the most at stake) as compact
JSON and the script renders them a page at a time; the page says how many lines each group has and names the flags
file that holds them all. Per-line values on the page are the flags' own (claim id, codes, amounts, match): never
an ID number, a name or a birth date. Every text reaches the page through :func:`html.escape` or, in the script,
``textContent``; the embedded JSON cannot close its element. The file is written atomically
(:mod:`matchkit.io.atomic`), mode
0600 as the flags: the worklist carries claim ids.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from matchkit import __version__
from matchkit.io.atomic import AtomicFile
from matchkit.report.catalogue import DEFAULT_LANGUAGE, Catalogue, check_language, load_catalogue
from matchkit.report.explain import SENTENCE_SEPARATOR, Explained, explain

WORKLIST_LIMIT = 2000  # lines per review group embedded in the page
PAGE_ROWS = 50
SCORE_BINS = 10

_STATUS_COLOURS = {"verified": "#59a14f", "partial": "#c27c0e", "rejected": "#e15759", "review": "#b07aa1",
                   "unverifiable": "#9d9d9d"}
_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")

_CSS = """
*{box-sizing:border-box}
body{font-family:"Microsoft YaHei","PingFang SC","Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;margin:0;color:#1f2933;
background:#f4f6f8;font-size:14px}
header{background:#1f3a5f;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.9}header p.small{color:#d9e2ec}
main{padding:16px 28px;max-width:1500px}
h2{font-size:17px;margin:22px 0 8px;color:#1f3a5f}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border-radius:6px;padding:12px 16px;min-width:170px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .k{color:#52606d;font-size:12px}.card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:14px}
.panel{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow:auto}
.panel h2{margin-top:4px}
table{border-collapse:collapse;width:100%}
td,th{padding:5px 8px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
th{background:#eef2f6;font-weight:600;white-space:nowrap}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:#52606d}
.small{font-size:12px;color:#52606d}
svg text{font-size:12px;font-family:inherit;fill:#1f2933}
.tabs{display:flex;flex-wrap:wrap;gap:6px;margin:8px 0}
.tabs button{border:1px solid #c5ced8;background:#fff;border-radius:16px;padding:5px 12px;cursor:pointer;font:inherit}
.tabs button.on{background:#1f3a5f;color:#fff;border-color:#1f3a5f}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0}
.filters label{color:#52606d}.filters select{max-width:280px}.filters select,.filters input{font:inherit;padding:4px 6px;border:1px solid #c5ced8;border-radius:4px}
.action{background:#fff8e6;border-left:4px solid #f0b429;padding:8px 12px;margin:6px 0}
#wl th{cursor:pointer;user-select:none}#wl th.sorted:after{content:attr(data-dir);margin-left:4px}
#wl tbody tr.line{cursor:pointer}#wl tbody tr.line:hover{background:#f0f4f8}
#wl tr.detail td{background:#fafbfc}
.reason{display:block}.reason code{margin-left:4px}
.st{display:inline-block;border-radius:3px;padding:0 6px;color:#fff;font-size:12px;white-space:nowrap}
.pager{display:flex;gap:10px;align-items:center;margin:8px 0}
.pager button{font:inherit;padding:3px 10px}
dl{margin:4px 0}dt{font-weight:600;margin-top:6px}dd{margin:2px 0 0 0}
.digest{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px;word-break:break-all}
"""

# The worklist: filters, sorting, pages, details. Data comes from the JSON element; text goes in via textContent.
_SCRIPT = r"""
(function(){
var D=JSON.parse(document.getElementById('worklist-data').textContent);
var L=D.labels, S={group:null,ded:'',reason:'',status:'',q:'',sort:'at_stake',dir:-1,page:0};
var COLS=[['claim_id','col.claim_id',0],['deduction','col.deduction',0],['status','col.status',0],
 ['reasons','col.reasons',0],['claimed','col.claimed',1],['allowed','col.allowed',1],['at_stake','col.at_stake',1],
 ['months','col.months',1],['match','col.match',0],['check','col.check',0]];
var IDX={claim_id:0,group:1,deduction:2,status:3,combo:4,claimed:5,allowed:6,at_stake:7,months:8,match:9,score:10};
function el(tag,text,cls){var e=document.createElement(tag);if(text!=null)e.textContent=text;if(cls)e.className=cls;return e;}
function money(x){if(x==null)return '';var s=Math.abs(x).toFixed(2).split('.');
 s[0]=s[0].replace(/\B(?=(\d{3})+(?!\d))/g,',');return (x<0?'-':'')+s[0]+'.'+s[1];}
function num(x){return String(x).replace(/\B(?=(\d{3})+(?!\d))/g,',');}
function fmt(t,v){return t.replace(/\{(\w+)\}/g,function(m,k){return v[k]!=null?v[k]:m;});}
function checks(r){var seen={},out=[];D.combos[r[4]].forEach(function(c){var k=D.reasons[c]&&D.reasons[c].check;
 if(k&&!seen[k]){seen[k]=1;out.push(k);}});return out.join(L.sep);}
function key(r,col){switch(col){case 'deduction':return D.deductions[r[2]];case 'status':return D.statuses[r[3]][1];
 case 'reasons':return D.combos[r[4]].join(';');case 'match':return r[10]==null?-1:r[10];
 case 'check':return checks(r);default:var v=r[IDX[col]];return v==null?-Infinity:v;}}
function rows(){var q=S.q.toLowerCase();return D.rows.filter(function(r){
 return (S.group==='*'||r[1]===S.group)&&(S.ded===''||r[2]===+S.ded)&&(S.status===''||r[3]===+S.status)&&
 (S.reason===''||D.combos[r[4]].indexOf(S.reason)>=0)&&(q===''||r[0].toLowerCase().indexOf(q)>=0);});}
function sorted(list){var c=S.sort,d=S.dir;return list.map(function(r,i){return [key(r,c),i,r];}).sort(function(a,b){
 return a[0]<b[0]?-d:a[0]>b[0]?d:a[1]-b[1];}).map(function(x){return x[2];});}
function option(sel,value,text){var o=el('option',text);o.value=value;sel.appendChild(o);}
function tabs(){var box=document.getElementById('wl-tabs');box.textContent='';
 D.groups.forEach(function(g){var b=el('button',g.name+' ('+num(g.total)+')');if(S.group===g.key)b.className='on';
  b.onclick=function(){S.group=g.key;S.page=0;draw();};box.appendChild(b);});
 var all=el('button',L.all+' ('+num(D.total)+')');if(S.group==='*')all.className='on';
 all.onclick=function(){S.group='*';S.page=0;draw();};box.appendChild(all);}
function note(){var box=document.getElementById('wl-note');box.textContent='';
 var gs=D.groups.filter(function(g){return S.group==='*'?g.shown<g.total:g.key===S.group;});
 gs.forEach(function(g){var p=el('div',null,'action');p.appendChild(el('strong',g.name+L.colon));
  p.appendChild(document.createTextNode(g.action+' '));
  p.appendChild(el('span',g.shown<g.total?fmt(L.capped,{limit:num(D.limit),total:num(g.total),shown:num(g.shown),flags:D.flags}):
   fmt(L.complete,{total:num(g.total)}),'small'));box.appendChild(p);});}
function head(){var tr=document.querySelector('#wl thead tr');tr.textContent='';COLS.forEach(function(c){
 var th=el('th',L[c[1]]);if(c[2])th.className='n';if(S.sort===c[0]){th.className+=' sorted';
 th.setAttribute('data-dir',S.dir<0?'\u25bc':'\u25b2');}th.onclick=function(){if(S.sort===c[0])S.dir=-S.dir;
 else{S.sort=c[0];S.dir=c[2]?-1:1;}S.page=0;draw();};tr.appendChild(th);});}
function detail(r){var td=el('td');td.colSpan=COLS.length;var dl=el('dl');D.combos[r[4]].forEach(function(c){
 var x=D.reasons[c]||{name:c};dl.appendChild(el('dt',x.name+' ('+c+')'));
 [['col.evidence','evidence'],['col.rule','rule'],['col.basis','basis'],['col.check','check']].forEach(function(f){
  if(x[f[1]]){var dd=el('dd');dd.appendChild(el('strong',L[f[0]]+L.colon));dd.appendChild(document.createTextNode(x[f[1]]));
  dl.appendChild(dd);}});});if(r[10]!=null){dl.appendChild(el('dt',L['col.score']));
 dl.appendChild(el('dd',r[10].toFixed(2)));}td.appendChild(dl);var tr=el('tr',null,'detail');tr.appendChild(td);return tr;}
function body(list){var tb=document.querySelector('#wl tbody');tb.textContent='';
 if(!list.length){var tr=el('tr'),td=el('td',L.no_rows);td.colSpan=COLS.length;tr.appendChild(td);tb.appendChild(tr);return;}
 list.forEach(function(r){var tr=el('tr',null,'line'),st=D.statuses[r[3]];
  tr.appendChild(el('td',r[0]));tr.appendChild(el('td',D.deductions[r[2]]));
  var s=el('td');var b=el('span',st[1],'st');b.style.background=st[2];s.appendChild(b);tr.appendChild(s);
  var rs=el('td');D.combos[r[4]].forEach(function(c){var x=D.reasons[c]||{name:c};var sp=el('span',x.name,'reason');
   sp.title=x.evidence||'';sp.appendChild(el('code',c));rs.appendChild(sp);});tr.appendChild(rs);
  [5,6,7].forEach(function(i){tr.appendChild(el('td',money(r[i]),'n'));});
  tr.appendChild(el('td',r[8]==null?'':String(r[8]),'n'));
  tr.appendChild(el('td',D.matches[r[9]]+(r[10]!=null&&D.matchKeys[r[9]]==='fuzzy'?' '+r[10].toFixed(2):'')));
  tr.appendChild(el('td',checks(r),'small'));
  var open=null;tr.onclick=function(){if(open){open.remove();open=null;}else{open=detail(r);tr.after(open);}};
  tb.appendChild(tr);});}
function draw(){tabs();note();head();var list=sorted(rows());var pages=Math.max(1,Math.ceil(list.length/D.page));
 if(S.page>=pages)S.page=pages-1;body(list.slice(S.page*D.page,(S.page+1)*D.page));
 document.getElementById('wl-page').textContent=fmt(L.page,{page:num(S.page+1),pages:num(pages),rows:num(list.length)});
 document.getElementById('wl-prev').disabled=S.page===0;document.getElementById('wl-next').disabled=S.page>=pages-1;}
function setup(){var ded=document.getElementById('wl-ded'),rea=document.getElementById('wl-reason'),
 sta=document.getElementById('wl-status');[ded,rea,sta].forEach(function(s){option(s,'',L.all);});
 D.deductions.forEach(function(d,i){option(ded,i,d);});Object.keys(D.reasons).forEach(function(c){
 option(rea,c,D.reasons[c].name+' ('+c+')');});D.statuses.forEach(function(s,i){option(sta,i,s[1]);});
 ded.onchange=function(){S.ded=ded.value;S.page=0;draw();};rea.onchange=function(){S.reason=rea.value;S.page=0;draw();};
 sta.onchange=function(){S.status=sta.value;S.page=0;draw();};var q=document.getElementById('wl-q');
 q.placeholder=L.search;q.oninput=function(){S.q=q.value;S.page=0;draw();};
 document.getElementById('wl-prev').onclick=function(){S.page--;draw();};
 document.getElementById('wl-next').onclick=function(){S.page++;draw();};
 S.group=D.groups.length?D.groups[0].key:'*';var H={};location.hash.replace(/^#/,'').split('&').forEach(function(p){
  var kv=p.split('=');if(kv.length===2)H[kv[0]]=decodeURIComponent(kv[1]);});
 if(H.g&&(H.g==='*'||D.groups.some(function(g){return g.key===H.g;})))S.group=H.g;
 if(H.r&&D.reasons[H.r]){S.reason=H.r;rea.value=H.r;}
 if(H.s&&COLS.some(function(c){return c[0]===H.s;})){S.sort=H.s;S.dir=H.d==='1'?1:-1;}
 if(H.c){S.q=H.c;q.value=H.c;}
 document.getElementById('wl-tools').hidden=false;draw();
 var lines=document.querySelectorAll('#wl tbody tr.line');if(H.c&&lines.length===1)lines[0].click();}
if(D.rows.length)setup();
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{_e(c)}</td>' for i, c in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else _money(value)


def _bar_chart(names: Sequence[str], groups: Mapping[str, Sequence[float]], *, title: str,
               colours: Sequence[str] | None = None, label_width: int = 170) -> str:
    """Horizontal bars as inline SVG; several series give grouped bars with a legend (e.g. claimed, allowed)."""
    if not names:
        return ""
    peak = max((v for values in groups.values() for v in values), default=0.0) or 1.0
    bar, gap, chart_width = 16, 8, 300
    per_row = bar * len(groups) + gap
    legend = 22 if len(groups) > 1 else 0
    height = legend + per_row * len(names) + gap
    width = label_width + chart_width + 110
    # inline SVG in HTML5 needs no xmlns (and the page must contain no URL at all)
    opening = (f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
               f'aria-label="{_e(title)}"><title>{_e(title)}</title>')
    parts = [opening]
    if len(groups) > 1:
        for index, group in enumerate(groups):
            x = label_width + index * 140
            parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{_COLOURS[index % len(_COLOURS)]}"/>'
                         f'<text x="{x + 16}" y="14">{_e(group)}</text>')
    for row, name in enumerate(names):
        y0 = legend + gap + row * per_row
        parts.append(f'<text x="{label_width - 6}" y="{y0 + bar * len(groups) / 2 + 4}" text-anchor="end">'
                     f"{_e(name)}</text>")
        for index, values in enumerate(groups.values()):
            value = float(values[row])
            w = max(chart_width * value / peak, 0.0)
            y = y0 + index * bar
            colour = colours[row] if colours is not None else _COLOURS[index % len(_COLOURS)]
            parts.append(f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar - 2}" fill="{colour}"/>'
                         f'<text x="{label_width + w + 4:.1f}" y="{y + bar - 5}">{_e(_fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ordered(counts: pd.Series, order: Sequence[str]) -> list[tuple[str, int]]:
    known = [k for k in order if k in counts.index]
    rest = sorted(str(k) for k in counts.index if k not in order)
    return [(k, int(counts[k])) for k in known + rest]


def _worklist(e: Explained, catalogue: Catalogue, lang: str, limit: int, flags_name: str | None) -> dict[str, Any]:
    """The embedded worklist: every non-verified line's row, at most ``limit`` per group (most at stake first)."""
    label = lambda key: catalogue.label(key, lang)
    open_rows = np.flatnonzero(e.status != "verified")
    order = {g: i for i, g in enumerate(catalogue.group_order())}
    frame = pd.DataFrame({"line": open_rows, "group": e.group[open_rows],
                          "rank": pd.Series(e.group[open_rows], dtype=object).map(order).fillna(len(order)).to_numpy(),
                          "at_stake": e.at_stake[open_rows]})
    frame = frame.sort_values(["rank", "at_stake", "line"], ascending=[True, False, True], kind="mergesort")
    totals = frame.groupby("group", sort=False).size()
    kept = frame[frame.groupby("group", sort=False).cumcount().to_numpy() < limit]
    lines = kept["line"].to_numpy()

    def index(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
        codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=True)
        return codes, [str(u) for u in uniques]

    ded_codes, ded_keys = index(e.deduction[lines])
    status_codes, status_keys = index(e.status[lines])
    match_codes, match_keys = index(e.match[lines])
    combo_ids, combo_uniques = pd.factorize(e.combo[lines], sort=True)
    combos = [list(e.combos[int(c)]) for c in combo_uniques]
    used_codes = sorted({code for combo in combos for code in combo},
                        key=lambda c: (list(catalogue.reasons).index(c) if c in catalogue.reasons else 999, c))

    def number(values: np.ndarray, digits: int) -> list[Any]:
        return [None if not np.isfinite(v) else (int(v) if digits == 0 else round(float(v), digits))
                for v in values]

    rows = list(zip(
        e.claim_id[lines].tolist(), e.group[lines].tolist(), ded_codes.tolist(), status_codes.tolist(),
        combo_ids.tolist(), number(e.claimed[lines], 2), number(e.allowed[lines], 2), number(e.at_stake[lines], 2),
        number(e.months[lines], 0), match_codes.tolist(), number(e.score[lines], 2)))
    shown = kept.groupby("group", sort=False).size()
    labels = {key: label(key) for key in (
        "col.claim_id", "col.deduction", "col.status", "col.reasons", "col.claimed", "col.allowed", "col.at_stake",
        "col.months", "col.match", "col.check", "col.evidence", "col.rule", "col.basis", "col.score", "colon")}
    labels.update(all=label("ui.all"), search=label("ui.search"), page=label("ui.page"),
                  no_rows=label("ui.no_rows"), capped=label("worklist.capped"),
                  complete=label("worklist.complete"), sep=SENTENCE_SEPARATOR[lang])
    return {
        "labels": labels,
        "limit": limit,
        "page": PAGE_ROWS,
        "flags": flags_name or label("run.flags_missing"),
        "total": len(open_rows),
        "groups": [{"key": g, "name": catalogue.groups[g].text(lang), "action": catalogue.groups[g].text(lang, "action"),
                    "total": int(totals[g]), "shown": int(shown.get(g, 0))}
                   for g in catalogue.group_order() if g in totals.index],
        "deductions": [catalogue.deduction(d, lang) for d in ded_keys],
        "statuses": [[s, catalogue.status(s, lang), _STATUS_COLOURS.get(s, "#52606d")] for s in status_keys],
        "matches": [catalogue.match(m, lang) for m in match_keys],
        "matchKeys": match_keys,
        "combos": combos,
        "reasons": {code: {"name": catalogue.reason(code, lang),
                           "evidence": catalogue.reason(code, lang, "evidence"),
                           "rule": catalogue.reason(code, lang, "rule"), "basis": catalogue.basis(code),
                           "check": catalogue.reason(code, lang, "check")} for code in used_codes},
        "rows": rows,
    }


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its <script> element or open a comment ('<' written as an escape)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _run_block(meta: Mapping[str, Any], catalogue: Catalogue, lang: str, flags_name: str | None) -> str:
    label = lambda key: catalogue.label(key, lang)
    rows: list[tuple[str, str]] = [(label("run.tool"), f"matchkit {__version__}")]
    for key, name in (("key_id", "run.key_id"), ("encoding_version", "run.encoding"), ("purpose", "run.purpose")):
        if meta.get(key):
            rows.append((label(name), str(meta[key])))
    rows.append((label("run.flags"), flags_name or label("run.flags_missing")))
    out = [_table([label("col.item"), label("col.value")], rows)]
    inputs = meta.get("inputs") or []
    if isinstance(inputs, Mapping):  # {name: rows}, as a caller of the library may give it
        inputs = [{"name": k, "rows": v} for k, v in inputs.items()]
    if inputs:
        body = "".join(
            "<tr>"
            f"<td>{_e(d.get('name', ''))}</td><td>{_e(d.get('source', ''))}</td>"
            f"<td class=\"n\">{_e(_fmt(d['rows']) if isinstance(d.get('rows'), int) else d.get('rows') or '')}</td>"
            f"<td>{_e(d.get('signer', ''))}</td><td class=\"digest\">{_e(d.get('digest') or '')}</td>"
            "</tr>" for d in inputs if isinstance(d, Mapping))
        out.append(f"<h3 class=\"small\">{_e(label('run.inputs'))}</h3><table><thead><tr>"
                   + "".join(f'<th class="{c}">{_e(label(k))}</th>' for k, c in (
                       ("col.file", ""), ("col.source", ""), ("col.rows", "n"), ("col.signer", ""),
                       ("col.digest", "")))
                   + f"</tr></thead><tbody>{body}</tbody></table>")
    return "".join(out)


def render_report(flags: pd.DataFrame, *, meta: Mapping[str, Any] | None = None, lang: str = DEFAULT_LANGUAGE,
                  flags_name: str | None = None, worklist_limit: int = WORKLIST_LIMIT,
                  catalogue: Catalogue | None = None) -> str:
    """The workbench page for ``flags`` (SPEC §5 columns) in ``lang`` (``zh`` or ``en``)."""
    lang = check_language(lang)
    catalogue = catalogue or load_catalogue()
    label = lambda key: catalogue.label(key, lang)
    meta = meta or {}
    e = explain(flags, catalogue)
    total = len(e)
    open_mask = e.status != "verified"
    to_review = int(open_mask.sum())
    claimed, allowed = float(np.nansum(e.claimed)), float(np.nansum(e.allowed))
    at_stake = float(np.nansum(e.at_stake[open_mask]))
    share = lambda n: f"{100 * n / max(total, 1):.1f}%"

    cards = "".join(f'<div class="card"><div class="k">{_e(label(k))}</div><div class="v">{_e(v)}</div></div>'
                    for k, v in (("summary.lines", f"{total:,}"), ("summary.to_review", f"{to_review:,}"),
                                 ("summary.claimed", _money(claimed)), ("summary.allowed", _money(allowed)),
                                 ("summary.at_stake", _money(at_stake))))

    statuses = _ordered(pd.Series(e.status, dtype=object).value_counts(), list(catalogue.statuses))
    status_panel = (
        _bar_chart([catalogue.status(s, lang) for s, _ in statuses], {"": [n for _, n in statuses]},
                   title=label("section.status"), colours=[_STATUS_COLOURS.get(s, "#52606d") for s, _ in statuses])
        + _table([label("col.status"), label("col.lines"), label("col.share"), label("col.meaning")],
                 [(catalogue.status(s, lang), f"{n:,}", share(n),
                   catalogue.statuses[s].text(lang, "meaning") if s in catalogue.statuses else "")
                  for s, n in statuses], numeric=(1, 2)))

    group_frame = pd.DataFrame({"group": e.group[open_mask], "at_stake": e.at_stake[open_mask]})
    per_group = group_frame.groupby("group").agg(lines=("at_stake", "size"), at_stake=("at_stake", "sum"))
    groups = [g for g in catalogue.group_order() if g in per_group.index]
    group_panel = (
        _bar_chart([catalogue.groups[g].text(lang) for g in groups], {"": [int(per_group.loc[g, "lines"])
                                                                           for g in groups]},
                   title=label("section.groups"), label_width=190)
        + _table([label("col.group"), label("col.lines"), label("col.at_stake")],
                 [(catalogue.groups[g].text(lang), f"{int(per_group.loc[g, 'lines']):,}",
                   _money(float(per_group.loc[g, "at_stake"]))) for g in groups], numeric=(1, 2))
        if groups else f"<p>{_e(label('worklist.empty'))}</p>")

    frame = pd.DataFrame({"deduction": e.deduction, "claimed": np.nan_to_num(e.claimed),
                          "allowed": np.nan_to_num(e.allowed)})
    by_deduction = frame.groupby("deduction", sort=True).agg(lines=("claimed", "size"), claimed=("claimed", "sum"),
                                                             allowed=("allowed", "sum"))
    ded_names = [catalogue.deduction(str(d), lang) for d in by_deduction.index]
    deduction_panel = (
        _bar_chart(ded_names, {label("col.claimed"): by_deduction["claimed"].tolist(),
                               label("col.allowed"): by_deduction["allowed"].tolist()},
                   title=label("chart.claimed_allowed"))
        + _table([label("col.deduction"), label("col.lines"), label("col.claimed"), label("col.allowed")],
                 [(name, f"{int(r.lines):,}", _money(r.claimed), _money(r.allowed))
                  for name, r in zip(ded_names, by_deduction.itertuples())]
                 + [(label("total"), f"{total:,}", _money(claimed), _money(allowed))], numeric=(1, 2, 3)))

    matches = _ordered(pd.Series(e.match, dtype=object).value_counts(), list(catalogue.matches))
    fuzzy_scores = e.score[(e.match == "fuzzy") & np.isfinite(e.score)].clip(0, 1)
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    histogram, _ = np.histogram(fuzzy_scores, bins=edges)
    first = int(np.flatnonzero(histogram)[0]) if histogram.any() else 0
    bins = [(f"{edges[i]:.1f}–{edges[i + 1]:.1f}", int(histogram[i])) for i in range(first, SCORE_BINS)]
    match_panel = (
        _bar_chart([catalogue.match(m, lang) for m, _ in matches], {"": [n for _, n in matches]},
                   title=label("section.match"), label_width=90)
        + _table([label("col.match"), label("col.lines"), label("col.share")],
               [(catalogue.match(m, lang), f"{n:,}", share(n)) for m, n in matches], numeric=(1, 2))
        + f"<h2>{_e(label('section.scores'))}</h2>"
        + (_bar_chart([b for b, _ in bins], {"": [n for _, n in bins]}, title=label("section.scores"),
                      label_width=90) if len(fuzzy_scores) else f"<p>{_e(label('no_fuzzy'))}</p>"))

    per_code: dict[str, int] = {}
    for combo, n in zip(e.combos, np.bincount(e.combo, minlength=len(e.combos)) if total else []):
        for code in combo:
            per_code[code] = per_code.get(code, 0) + int(n)
    reason_rows = sorted(per_code.items(), key=lambda item: (-item[1], item[0]))
    reasons_panel = (
        _bar_chart([f"{catalogue.reason(c, lang)}" for c, _ in reason_rows], {"": [n for _, n in reason_rows]},
                   title=label("section.reasons"), label_width=200)
        + "<table><thead><tr>" + "".join(f'<th class="{c}">{_e(label(k))}</th>' for k, c in (
            ("col.reason", ""), ("col.lines", "n"), ("col.evidence", ""), ("col.rule", ""), ("col.basis", "")))
        + "</tr></thead><tbody>"
        + "".join(f"<tr><td>{_e(catalogue.reason(c, lang))}<br><code>{_e(c)}</code></td>"
                  f'<td class="n">{n:,}</td><td>{_e(catalogue.reason(c, lang, "evidence"))}</td>'
                  f'<td>{_e(catalogue.reason(c, lang, "rule"))}</td><td>{_e(catalogue.basis(c))}</td></tr>'
                  for c, n in reason_rows)
        + "</tbody></table>" if reason_rows else f"<p>{_e(label('no_reasons'))}</p>")

    data = _worklist(e, catalogue, lang, worklist_limit, flags_name)
    worklist = (
        f'<section id="worklist"><h2>{_e(label("section.worklist"))}</h2>'
        + (f'<p class="small">{_e(label("worklist.intro"))} {_e(label("at_stake.note"))}</p>'
           '<div id="wl-tools" hidden><div class="tabs" id="wl-tabs"></div><div id="wl-note"></div>'
           '<div class="filters">'
           + "".join(f'<label for="{i}">{_e(label(k))}</label><select id="{i}"></select>'
                     for i, k in (("wl-ded", "col.deduction"), ("wl-reason", "col.reasons"),
                                  ("wl-status", "col.status")))
           + '<input id="wl-q" type="search" aria-label="' + _e(label("ui.search")) + '"></div>'
           '<table id="wl"><thead><tr></tr></thead><tbody></tbody></table>'
           '<div class="pager"><button id="wl-prev" type="button">' + _e(label("ui.prev")) + '</button>'
           '<span id="wl-page"></span><button id="wl-next" type="button">' + _e(label("ui.next")) + "</button>"
           "</div></div>"
           f"<noscript><p>{_e(label('ui.noscript'))}</p></noscript>"
           if to_review else f"<p>{_e(label('worklist.empty'))}</p>")
        + "</section>")

    subtitle = label("report.subtitle").format(lines=f"{total:,}", review=f"{to_review:,}")
    title = label("report.title")
    return (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p><p class=\"small\">{_e(label('report.privacy'))}</p>"
        f"</header><main>"
        f'<h2>{_e(label("section.overview"))}</h2><div class="cards">{cards}</div>'
        f'<div class="grid" style="margin-top:14px">'
        f'<div class="panel" id="status"><h2>{_e(label("section.status"))}</h2>{status_panel}</div>'
        f'<div class="panel" id="groups"><h2>{_e(label("section.groups"))}</h2>{group_panel}</div>'
        f"</div>"
        + worklist
        + f'<div class="grid" style="margin-top:14px">'
        f'<div class="panel" id="deductions"><h2>{_e(label("section.deductions"))}</h2>{deduction_panel}</div>'
        f'<div class="panel" id="match"><h2>{_e(label("section.match"))}</h2>{match_panel}</div></div>'
        f'<div class="panel" id="reasons" style="margin-top:14px"><h2>{_e(label("section.reasons"))}</h2>'
        f"{reasons_panel}</div>"
        f'<div class="panel" id="run" style="margin-top:14px"><h2>{_e(label("section.run"))}</h2>'
        f"{_run_block(meta, catalogue, lang, flags_name)}</div>"
        f"</main>"
        f'<script type="application/json" id="worklist-data">{_json_for_script(data)}</script>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(flags: pd.DataFrame, path: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None,
                 lang: str = DEFAULT_LANGUAGE, flags_name: str | None = None,
                 worklist_limit: int = WORKLIST_LIMIT) -> None:
    """Write the workbench page for ``flags`` to ``path`` atomically (mode 0600, as the flags: the worklist carries
    claim ids)."""
    text = render_report(flags, meta=meta, lang=lang, flags_name=flags_name, worklist_limit=worklist_limit)
    with AtomicFile(path, "report", encoding="utf-8") as target:
        target.handle.write(text)
