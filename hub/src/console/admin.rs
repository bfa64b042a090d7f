//! The administrator's page (`GET /admin`): console accounts (create, change, remove, through
//! the users API), and the audit log's export and chain check. Other roles get a 403 page.

use super::api::{read, ApiError};
use super::auth::Session;
use super::page::{esc, forbidden, local, shell, Ctx, Nav};
use super::AppState;
use crate::access::{Permission, Principal, Role};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::fmt::Write;

pub async fn page(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !who.may(Permission::ManageUsers) {
        let ctx = Ctx::new(who, session, &headers);
        return Ok(forbidden(&ctx, Nav::Admin, "manage users"));
    }
    let users = read(&state, |s| s.users()).await?;
    let ctx = Ctx::new(who, session, &headers);
    let mut rows = String::new();
    for u in &users {
        let _ = write!(
            rows,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td><button type=\"button\" class=\"secondary\" data-remove=\"{name}\">{}</button></td></tr>",
            esc(&u.role),
            esc(&u.teams.join(", ")),
            u.locked_until.map(local).unwrap_or_default(),
            ctx.t("remove"),
            name = esc(&u.name),
        );
    }
    let roles: String = Role::ALL.iter().map(|r| format!("<option value=\"{r}\">{r}</option>")).collect();
    let body = format!(
        r#"<table><thead><tr><th>{name}</th><th>{role}</th><th>{teams}</th><th>{locked}</th><th></th></tr></thead><tbody id="users">{rows}</tbody></table>
<h3>{new_user}</h3><form id="user-form" class="inline">
<label>{name}<input name="name" id="user-name" required pattern="[a-z0-9._\-]{{1,64}}"></label>
<label>{role}<select name="role" id="user-role">{roles}</select></label>
<label>{teams_hint}<input name="teams" id="user-teams"></label>
<label>{password}<input name="password" id="user-password" type="password" minlength="10" required autocomplete="new-password"></label>
<button type="submit" id="user-save">{save}</button></form>
<h3>{audit}</h3><p><a class="button" href="/api/v1/audit?format=csv&amp;limit=100000" download>{export}</a> <a class="button secondary" href="/api/v1/audit/verify">{verify}</a></p>
<script>
document.getElementById("user-form").addEventListener("submit", async e => {{
  e.preventDefault();
  const f = e.target.elements;
  const teams = f.teams.value.split(",").map(t => t.trim()).filter(t => t);
  const r = await api("PUT", "/api/v1/users/" + encodeURIComponent(f.name.value), {{role: f.role.value, teams, password: f.password.value}});
  if (r.ok) location.reload(); else alert(T.failed + ": " + (await r.json()).message);
}});
document.getElementById("users").addEventListener("click", async e => {{
  const name = e.target.dataset.remove;
  if (!name || !confirm(name + "?")) return;
  const r = await api("DELETE", "/api/v1/users/" + encodeURIComponent(name));
  if (r.ok) location.reload(); else alert(T.failed + ": " + (await r.json()).message);
}});
</script>"#,
        name = ctx.t("col_name"),
        role = ctx.t("col_role"),
        teams = ctx.t("col_teams"),
        locked = ctx.t("col_locked"),
        new_user = ctx.t("new_user"),
        teams_hint = ctx.t("teams_hint"),
        password = ctx.t("password"),
        save = ctx.t("save"),
        audit = ctx.t("nav_audit"),
        export = ctx.t("audit_export"),
        verify = ctx.t("audit_verify"),
    );
    Ok(shell(&ctx, Nav::Admin, ctx.t("admin_title"), "admin", "", &body).into_response())
}
