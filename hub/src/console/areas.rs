//! A person's safe areas on their page: a drawing of the areas round the home, the list, and
//! (for installers, nurses and admins) an editor.
//!
//! The areas are the care plan's `safe_areas`, in the shape of the agent's `[[gps.areas]]`: a
//! circle (centre and radius in metres) or a polygon (corners in order), with optional local
//! windows in which leaving raises `geofence_left`. The editor sends the whole list to
//! `PUT /api/v1/care/recipients/{id}/safe-areas`, which judges it with the agent's own checks
//! and answers every problem by field; the areas reach the tracker with the agent
//! configuration of the person's GPS device (`/devices/{id}/agent.toml`).
//!
//! The drawing is plain SVG in local metres round the home (no map tiles: the console works
//! without internet). A click on it puts the centre of a circle there, or adds a corner to a
//! polygon.

use super::page::{esc, Ctx};
use crate::access::Permission;
use crate::rounds::plan::Recipient;
use std::fmt::Write;
use vaka_agent::gps::config::RawArea;

/// Metres per degree of latitude (and of longitude at the equator), close enough for drawing.
const M_PER_DEG: f64 = 111_320.0;
const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 300.0;

/// The drawing's projection: local metres east and north of the home, scaled into the view.
struct View {
    lat0: f64,
    lon0: f64,
    /// cos(lat0): metres per degree of longitude relative to latitude.
    k: f64,
    /// Pixels per metre.
    scale: f64,
}

impl View {
    /// Fits the home and every area (circles with their radius) into the view, with a margin,
    /// and at least 200 m across so a lone home does not fill the picture.
    fn fit(home: (f64, f64), areas: &[RawArea]) -> View {
        let (lat0, lon0) = home;
        let k = lat0.to_radians().cos();
        let metres = |lat: f64, lon: f64| ((lon - lon0) * k * M_PER_DEG, (lat - lat0) * M_PER_DEG);
        let mut reach: f64 = 100.0;
        for a in areas {
            if let Some(c) = &a.circle {
                let (x, y) = metres(c.lat, c.lon);
                reach = reach.max(x.abs() + c.radius_m).max((y.abs() + c.radius_m) * WIDTH / HEIGHT);
            }
            for p in a.polygon.iter().flatten() {
                if let [lat, lon] = p.as_slice() {
                    let (x, y) = metres(*lat, *lon);
                    reach = reach.max(x.abs()).max(y.abs() * WIDTH / HEIGHT);
                }
            }
        }
        View { lat0, lon0, k, scale: (WIDTH / 2.0 - 15.0) / reach }
    }

    fn at(&self, lat: f64, lon: f64) -> (f64, f64) {
        let x = (lon - self.lon0) * self.k * M_PER_DEG;
        let y = (lat - self.lat0) * M_PER_DEG;
        (WIDTH / 2.0 + x * self.scale, HEIGHT / 2.0 - y * self.scale)
    }
}

/// The SVG drawing: each area (yellow while it raises alarms only at times, blue always),
/// the home as a white square, and a scale bar.
fn drawing(r: &Recipient) -> String {
    let v = View::fit((r.position.lat, r.position.lon), &r.safe_areas);
    let mut svg = String::new();
    for a in &r.safe_areas {
        let colour = if a.active.is_some() { "#ffd27a" } else { "#9cc8ff" };
        let label_at = if let Some(c) = &a.circle {
            let (x, y) = v.at(c.lat, c.lon);
            let rad = c.radius_m * v.scale;
            let _ = write!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{rad:.1}\" fill=\"{colour}\" fill-opacity=\"0.15\" stroke=\"{colour}\" stroke-width=\"2\"/>");
            Some((x, y - rad - 4.0))
        } else if let Some(points) = &a.polygon {
            let xy: Vec<(f64, f64)> = points.iter().filter_map(|p| match p.as_slice() {
                [lat, lon] => Some(v.at(*lat, *lon)),
                _ => None,
            }).collect();
            let path: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(svg, "<polygon points=\"{}\" fill=\"{colour}\" fill-opacity=\"0.15\" stroke=\"{colour}\" stroke-width=\"2\"/>", path.join(" "));
            xy.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).map(|(x, y)| (x, y - 4.0))
        } else {
            None
        };
        if let Some((x, y)) = label_at {
            let _ = write!(svg, "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", y.max(12.0), esc(&a.name));
        }
    }
    let (hx, hy) = v.at(r.position.lat, r.position.lon);
    let _ = write!(svg, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"#e9edf1\"><title>{}</title></rect>", hx - 5.0, hy - 5.0, esc(&r.address));
    // A scale bar of a round length near a quarter of the width.
    let quarter = WIDTH / 4.0 / v.scale;
    let bar_m = [10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10_000.0, 25_000.0, 50_000.0].into_iter().rev().find(|m| *m <= quarter).unwrap_or(10.0);
    let bar = bar_m * v.scale;
    let label = if bar_m >= 1000.0 { format!("{} km", bar_m / 1000.0) } else { format!("{bar_m} m") };
    let _ = write!(svg, "<line x1=\"10\" y1=\"290\" x2=\"{:.1}\" y2=\"290\" stroke=\"#e9edf1\" stroke-width=\"2\"/><text x=\"10\" y=\"284\">{label}</text>", 10.0 + bar);
    format!(
        "<svg class=\"map\" id=\"area-map\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" data-lat0=\"{}\" data-lon0=\"{}\" data-k=\"{}\" data-scale=\"{}\" role=\"img\">{svg}</svg>",
        v.lat0, v.lon0, v.k, v.scale
    )
}

/// How an area is written in the list: `circle 150 m round 64.75000, 20.95000` or
/// `polygon of 5 corners`, and when it raises alarms.
fn describe(ctx: &Ctx, a: &RawArea) -> String {
    let shape = match (&a.circle, &a.polygon) {
        (Some(c), _) => format!("{} {:.0} m · {:.5}, {:.5}", ctx.t("area_circle"), c.radius_m, c.lat, c.lon),
        (_, Some(p)) => format!("{} · {} {}", ctx.t("area_polygon"), p.len(), ctx.t("area_corners")),
        _ => String::new(),
    };
    let when = match &a.active {
        Some(w) => w.join(", "),
        None => ctx.t("always").to_string(),
    };
    format!("{shape} · {}: {}", ctx.t("area_active"), esc(&when))
}

/// The safe-area section of a person's page.
pub(super) fn section(ctx: &Ctx, r: &Recipient) -> String {
    let mut body = format!("<h3>{}</h3>", ctx.t("safe_areas"));
    let _ = write!(
        body,
        "<p>{}: {}</p>",
        ctx.t("area_gps_device"),
        r.gps_device.as_deref().map(esc).unwrap_or_else(|| ctx.t("none").to_string())
    );
    let may_edit = ctx.who.may(Permission::EditSafeAreas);
    let _ = write!(body, "<figure>{}</figure>", drawing(r));
    if r.safe_areas.is_empty() {
        let _ = write!(body, "<p class=\"muted\" id=\"areas-none\">{}</p>", ctx.t("no_safe_areas"));
    } else {
        body += "<ul class=\"plain\" id=\"areas\">";
        for (i, a) in r.safe_areas.iter().enumerate() {
            let remove = match may_edit {
                true => format!(" <button type=\"button\" class=\"area-remove\" data-index=\"{i}\">{}</button>", ctx.t("remove")),
                false => String::new(),
            };
            let _ = write!(body, "<li><b>{}</b> {}{remove}</li>", esc(&a.name), describe(ctx, a));
        }
        body += "</ul>";
    }
    if !may_edit {
        return body;
    }
    let areas = serde_json::to_string(&r.safe_areas).unwrap_or_else(|_| "[]".into());
    let _ = write!(
        body,
        r#"<form id="area-form" data-person="{id}" data-areas="{areas}">
<p class="muted">{hint}</p>
<label>{name}<input id="area-name" required maxlength="200"></label>
<label>{kind}<select id="area-kind"><option value="circle">{circle}</option><option value="polygon">{polygon}</option></select></label>
<span id="area-circle-fields"><label>{centre}<input id="area-centre" value="{lat:.5}, {lon:.5}"></label>
<label>{radius}<input id="area-radius" type="number" min="10" max="100000" step="1" value="150"></label></span>
<label id="area-points-field" hidden>{points}<textarea id="area-points" rows="5"></textarea></label>
<label>{active}<input id="area-active" placeholder="20:00-08:00"></label>
<button type="submit" id="area-add">{add}</button> <span id="area-result" role="status"></span></form>
<script>
(() => {{
  const form = document.getElementById("area-form"), map = document.getElementById("area-map");
  const kind = document.getElementById("area-kind"), out = document.getElementById("area-result");
  const areas = JSON.parse(form.dataset.areas);
  const show = () => {{
    document.getElementById("area-circle-fields").hidden = kind.value !== "circle";
    document.getElementById("area-points-field").hidden = kind.value !== "polygon";
  }};
  kind.addEventListener("change", show);
  const pair = text => text.split(",").map(s => Number(s.trim()));
  // A click on the drawing: the centre of a circle, or the next corner of a polygon.
  map.addEventListener("click", e => {{
    const box = map.getBoundingClientRect(), d = map.dataset;
    const x = (e.clientX - box.left) * {width} / box.width - {width} / 2, y = {height} / 2 - (e.clientY - box.top) * {height} / box.height;
    const lat = Number(d.lat0) + y / Number(d.scale) / {mdeg}, lon = Number(d.lon0) + x / Number(d.scale) / {mdeg} / Number(d.k);
    const here = lat.toFixed(5) + ", " + lon.toFixed(5);
    if (kind.value === "circle") document.getElementById("area-centre").value = here;
    else {{ const t = document.getElementById("area-points"); t.value = (t.value.trim() ? t.value.trim() + "\n" : "") + here; }}
  }});
  const send = list => apiSend("PUT", "/api/v1/care/recipients/" + encodeURIComponent(form.dataset.person) + "/safe-areas", list, out);
  form.addEventListener("submit", e => {{
    e.preventDefault();
    const area = {{name: document.getElementById("area-name").value.trim()}};
    if (kind.value === "circle") {{
      const [lat, lon] = pair(document.getElementById("area-centre").value);
      area.circle = {{lat, lon, radius_m: Number(document.getElementById("area-radius").value)}};
    }} else {{
      area.polygon = document.getElementById("area-points").value.split("\n").filter(l => l.trim()).map(pair);
    }}
    const active = document.getElementById("area-active").value.split(",").map(s => s.trim()).filter(Boolean);
    if (active.length) area.active = active;
    send(areas.concat([area]));
  }});
  for (const b of document.querySelectorAll(".area-remove")) {{
    b.addEventListener("click", () => send(areas.filter((_, i) => i !== Number(b.dataset.index))));
  }}
  show();
}})();
</script>"#,
        id = esc(&r.id),
        areas = esc(&areas),
        hint = ctx.t("area_map_hint"),
        name = ctx.t("col_name"),
        kind = ctx.t("area_kind"),
        circle = ctx.t("area_circle"),
        polygon = ctx.t("area_polygon"),
        centre = ctx.t("area_centre"),
        lat = r.position.lat,
        lon = r.position.lon,
        radius = ctx.t("area_radius"),
        points = ctx.t("area_points"),
        active = ctx.t("area_active_input"),
        add = ctx.t("area_add"),
        width = WIDTH,
        height = HEIGHT,
        mdeg = M_PER_DEG,
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaka_agent::gps::config::RawCircle;

    #[test]
    fn the_drawing_fits_every_area_and_the_home_and_a_click_maps_back_to_the_same_place() {
        let areas = vec![
            RawArea { name: "Hemma".into(), circle: Some(RawCircle { lat: 64.75, lon: 20.95, radius_m: 150.0 }), polygon: None, active: None },
            RawArea { name: "Byn".into(), circle: None, polygon: Some(vec![vec![64.76, 20.93], vec![64.76, 20.99], vec![64.74, 20.99]]), active: Some(vec!["20:00-08:00".into()]) },
        ];
        let v = View::fit((64.75, 20.95), &areas);
        for (lat, lon) in [(64.76, 20.93), (64.76, 20.99), (64.74, 20.99)] {
            let (x, y) = v.at(lat, lon);
            assert!((0.0..=WIDTH).contains(&x) && (0.0..=HEIGHT).contains(&y), "{lat},{lon} drawn at {x},{y}");
            // The script's inverse (the click handler) gives the corner back.
            let (dx, dy) = (x - WIDTH / 2.0, HEIGHT / 2.0 - y);
            let back = (v.lat0 + dy / v.scale / M_PER_DEG, v.lon0 + dx / v.scale / M_PER_DEG / v.k);
            assert!((back.0 - lat).abs() < 1e-9 && (back.1 - lon).abs() < 1e-9, "{back:?}");
        }
        assert_eq!(v.at(64.75, 20.95), (WIDTH / 2.0, HEIGHT / 2.0), "the home is in the middle");
        // A circle's radius scales with the view: 150 m is well inside a 400 px drawing here.
        assert!(150.0 * v.scale > 5.0 && 150.0 * v.scale < WIDTH / 2.0);
    }
}
