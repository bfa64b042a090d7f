//! Every word the console shows, in Swedish (the default) and English, in one place.
//!
//! A user picks the language with the toggle in the page header (`GET /lang/{sv|en}` sets the
//! `vaka_lang` cookie). Pages look words up with [`Lang::t`]; the script gets the words it
//! needs as JSON in the page ([`Lang::script_words`]). A key missing from [`WORDS`] shows as
//! the key itself (and a unit test keeps every key the code uses in the table).

use axum::http::HeaderMap;

/// The cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "vaka_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Sv,
    En,
}

/// (key, Swedish, English).
const WORDS: &[(&str, &str, &str)] = &[
    ("app", "Vaka – nattillsyn", "Vaka – night supervision"),
    ("login_title", "Vaka – logga in", "Vaka – log in"),
    ("login_name", "Användarnamn", "User name"),
    ("login_password", "Lösenord", "Password"),
    ("login_button", "Logga in", "Log in"),
    ("login_wrong", "Fel användarnamn eller lösenord.", "Wrong name or password."),
    ("login_locked", "Kontot är låst efter för många felaktiga försök. Försök igen om {minutes} min.", "The account is locked after too many failed attempts. Try again in {minutes} min."),
    ("login_stale", "Formuläret var för gammalt, försök igen.", "The form was too old, try again."),
    ("skip", "Hoppa till innehållet", "Skip to content"),
    ("nav_now", "Nu", "Now"),
    ("nav_round", "Nattens runda", "Tonight's round"),
    ("nav_patrols", "Patruller", "Patrols"),
    ("nav_people", "Personer", "People"),
    ("nav_devices", "Enheter", "Devices"),
    ("nav_audit", "Logg", "Audit log"),
    ("logout", "Logga ut", "Log out"),
    ("lang_other", "English", "Svenska"),
    ("connecting", "Ansluter…", "Connecting…"),
    ("live", "Live", "Live"),
    ("offline", "Ingen förbindelse – försöker igen…", "No connection – retrying…"),
    ("not_found", "Finns inte (eller inte i dina team).", "Not found (or not in your teams)."),
    // Now
    ("now_title", "Behöver någon nu", "Needs someone now"),
    ("now_empty", "Inget larm eller ärende väntar.", "No alarm or task is waiting."),
    ("unacked_banner", "Okvitterade larm", "Unacknowledged alarms"),
    ("sound_on", "Slå på ljud", "Turn sound on"),
    ("ack", "Kvittera", "Acknowledge"),
    ("assign_self", "Ta själv", "Take it myself"),
    ("assign_patrol", "Tilldela patrull", "Assign to patrol"),
    ("patrol", "Patrull", "Patrol"),
    ("resolve", "Avsluta", "Resolve"),
    ("outcome", "Utfall", "Outcome"),
    ("note", "Anteckning", "Note"),
    ("not_acked", "Ej kvitterat", "Not acknowledged"),
    ("acked_by", "Kvitterat av", "Acknowledged by"),
    ("assigned_to", "Tilldelat", "Assigned to"),
    ("cleared", "Enheten har återställt larmet", "The device has cleared the alarm"),
    ("times", "gånger", "times"),
    ("ago", "sedan", "ago"),
    ("unknown_person", "Okänd person (enheten saknar vårdplan)", "Unknown person (device not in a care plan)"),
    ("escalation", "Eskalering: besök utlovat senast", "Escalation: visit promised by"),
    ("planned_for", "planerat", "planned"),
    ("not_planned", "ingen patrull planerad ännu", "no patrol planned yet"),
    ("unclear_waiting", "Oklar kamerabild – någon behöver titta", "Unclear camera picture – someone needs to look"),
    ("open_round", "Öppna i rundan", "Open in the round"),
    ("outcome_helped", "Hjälp given", "Helped"),
    ("outcome_no_action_needed", "Inget behövdes", "No action needed"),
    ("outcome_false_alarm", "Falsklarm", "False alarm"),
    ("outcome_handed_over", "Överlämnat (112, anhörig)", "Handed over (112, relative)"),
    ("kind_geofence_left", "GPS: har lämnat säkert område", "GPS: left the safe area"),
    ("kind_supervision_lost", "Tillsyn bruten: enheten hörs inte", "Supervision lost: device silent"),
    ("kind_dose_missed", "Missad dos", "Missed dose"),
    ("kind_fall_detected", "Fall upptäckt", "Fall detected"),
    ("kind_alarm_button", "Larmknapp", "Alarm button"),
    // Round
    ("round_title", "Nattens runda", "Tonight's round"),
    ("round_none", "Ingen runda pågår just nu.", "No round is running now."),
    ("col_time", "Tid", "Time"),
    ("col_person", "Person", "Person"),
    ("col_method", "Sätt", "Method"),
    ("col_status", "Status", "Status"),
    ("col_outcome", "Utfall", "Outcome"),
    ("col_patrol", "Patrull", "Patrol"),
    ("look", "Titta", "Look"),
    ("looks_well", "Ser bra ut", "Looks well"),
    ("send_visit", "Skicka besök", "Send a visit"),
    ("record", "Registrera", "Record"),
    ("snapshot_waiting", "Hämtar bilden…", "Fetching the picture…"),
    ("snapshot_removed", "Bilden är borttagen.", "The picture has been removed."),
    ("snapshot_failed", "Ingen bild att visa", "No picture to show"),
    ("snapshot_alt", "Integritetsfiltrerad kamerabild", "Privacy-filtered camera picture"),
    ("seconds_left", "s kvar", "s left"),
    ("state_planned", "Planerad", "Planned"),
    ("state_camera_sent", "Kamera tillfrågad", "Camera asked"),
    ("state_awaiting_staff", "Oklar – titta", "Unclear – look"),
    ("state_retry_wait", "Nytt försök snart", "Retry soon"),
    ("state_visit", "Besök", "Visit"),
    ("state_done", "Klar", "Done"),
    ("method_camera", "Kamera", "Camera"),
    ("method_visit", "Besök", "Visit"),
    ("method_camera_then_visit", "Kamera, sedan besök", "Camera, then visit"),
    ("result_checked_by_camera", "Tillsedd med kamera", "Checked by camera"),
    ("result_checked_by_visit", "Tillsedd vid besök", "Checked by visit"),
    ("result_declined", "Avböjde", "Declined"),
    ("result_not_at_home", "Inte hemma", "Not at home"),
    ("result_refused_by_consent", "Utanför samtycke", "Refused by consent"),
    ("result_missed", "Missad", "Missed"),
    // Patrols
    ("patrols_title", "Patruller i natt", "Tonight's patrols"),
    ("patrols_none", "Inga besök planerade.", "No visits planned."),
    ("map", "Karta", "Map"),
    ("start", "Start", "Start"),
    ("urgent", "brådskande", "urgent"),
    // People
    ("people_title", "Personer", "People"),
    ("address", "Adress", "Address"),
    ("team", "Team", "Team"),
    ("care_plan", "Vårdplan", "Care plan"),
    ("notes", "Anteckningar", "Notes"),
    ("opted_out", "Avböjda nätter", "Nights opted out"),
    ("consent", "Kamerasamtycke", "Camera consent"),
    ("no_consent", "Inget kamerasamtycke", "No camera consent"),
    ("rules", "Larmregler", "Alarm rules"),
    ("devices", "Enheter", "Devices"),
    ("recent_events", "Senaste händelser", "Recent events"),
    ("tonight", "I natt", "Tonight"),
    // Devices
    ("devices_title", "Enheter", "Devices"),
    ("col_device", "Enhet", "Device"),
    ("col_site", "Plats", "Site"),
    ("col_seen", "Senast hörd", "Last heard"),
    ("col_queue", "Kö", "Queue"),
    ("col_supervision", "Tillsyn", "Supervision"),
    ("online", "online", "online"),
    ("offline_dev", "offline", "offline"),
    ("supervision_lost", "TILLSYN BRUTEN", "SUPERVISION LOST"),
    ("never_seen", "aldrig hörd", "never heard"),
    ("register_title", "Registrera enhet", "Register a device"),
    ("device_id", "Enhetens id", "Device id"),
    ("site", "Plats (site)", "Site"),
    ("person", "Person", "Person"),
    ("none", "ingen ännu", "none yet"),
    ("is_camera", "Kameran för nattillsyn", "The night-check camera"),
    ("is_gps", "Läser personens GPS-larm (trygghetsområden)", "Reads the person's GPS tracker (safe areas)"),
    ("safe_areas", "Trygghetsområden (GPS)", "Safe areas (GPS)"),
    ("area_gps_device", "Enhet som läser GPS-larmet", "Device reading the GPS tracker"),
    ("no_safe_areas", "Inga trygghetsområden i planen.", "No safe areas in the plan."),
    ("area_circle", "Cirkel", "Circle"),
    ("area_polygon", "Polygon", "Polygon"),
    ("area_corners", "hörn", "corners"),
    ("always", "alltid", "always"),
    ("area_active", "larmar", "raises alarms"),
    ("area_map_hint", "Klicka på ritningen för att sätta cirkelns mittpunkt eller lägga till ett hörn.", "Click the drawing to set the circle's centre or add a corner."),
    ("area_kind", "Form", "Shape"),
    ("area_centre", "Mittpunkt (lat, lon)", "Centre (lat, lon)"),
    ("area_radius", "Radie (m)", "Radius (m)"),
    ("area_points", "Hörn i ordning, ett per rad: lat, lon", "Corners in order, one per line: lat, lon"),
    ("area_active_input", "Larmar under (t.ex. 20:00-08:00; tomt = alltid)", "Raises alarms during (e.g. 20:00-08:00; blank = always)"),
    ("area_add", "Lägg till område", "Add area"),
    ("register", "Registrera", "Register"),
    ("registered_by", "Registrerad av", "Registered by"),
    ("first_event", "Första händelse", "First event"),
    ("first_event_waiting", "Väntar på första händelse…", "Waiting for the first event…"),
    ("first_event_seen", "Händelse sedd", "Event seen"),
    ("test_check", "Kör testkontroll", "Run a test check"),
    ("test_check_sent", "Testkontroll skickad…", "Test check sent…"),
    ("download_bundle", "Ladda ner installationspaket", "Download provisioning bundle"),
    ("download_config", "Bara agentkonfigurationen", "The agent configuration only"),
    ("provisioning_note", "Paketet (tar, packas upp i /etc/vaka) innehåller agentkonfigurationen, ett nytt certifikat och en ny nyckel för enheten från hubbens enhets-CA, och CA-certifikatet som brokern ska lita på. Varje nedladdning ger ett nytt certifikat och loggas.", "The bundle (a tar to unpack into /etc/vaka) holds the agent configuration, a new certificate and key for the device from the hub's device CA, and the CA certificate the broker trusts. Each download issues a new certificate and is logged."),
    ("failed", "Misslyckades", "Failed"),
    ("certificates", "Certifikat", "Certificates"),
    ("no_certificates", "Inga certifikat utfärdade ännu: ladda ner installationspaketet, eller skicka enhetens certifikatbegäran (vaka-agent identity request) till POST /api/v1/devices/{id}/certificate.", "No certificates issued yet: download the provisioning bundle, or send the device's signing request (vaka-agent identity request) to POST /api/v1/devices/{id}/certificate."),
    ("col_serial", "Serienummer", "Serial"),
    ("col_key", "Nyckel", "Key"),
    ("col_issued", "Utfärdat", "Issued"),
    ("col_valid_until", "Giltigt till", "Valid until"),
    ("key_on_device", "gjord på enheten", "made on the device"),
    ("key_from_hub", "från hubben (paket)", "from the hub (bundle)"),
    ("valid", "giltigt", "valid"),
    ("revoked", "spärrat", "revoked"),
    ("revoke", "Spärra", "Revoke"),
    ("revoke_all", "Spärra alla enhetens certifikat", "Revoke all of the device's certificates"),
    ("revoke_reason", "Skäl (loggas)", "Reason (logged)"),
    ("revoke_note", "Spärren gäller direkt: brokern får en ny spärrlista och enhetens uppkoppling bryts. Spärra ett gammalt certifikat efter byte, eller alla om enheten är stulen eller trasig.", "Revocation takes effect at once: the broker gets a new revocation list and the device's connection is closed. Revoke an old certificate after a change, or all of them when the device is stolen or broken."),
    ("revoke_needs_reason", "Skriv ett skäl först.", "Give a reason first."),
    // Reports
    ("nav_reports", "Rapporter", "Reports"),
    ("reports_title", "Rapporter", "Reports"),
    ("csv_month", "Ladda ner månaden (CSV)", "Download the month (CSV)"),
    ("csv_nights", "Nätter (CSV)", "Nights (CSV)"),
    ("chart_checks", "Tillsyner per natt", "Checks per night"),
    ("per_team", "Per team", "Per team"),
    ("r_planned", "Tillsyner", "Checks"),
    ("r_camera", "Med kamera", "By camera"),
    ("r_visit", "Med besök", "By visit"),
    ("r_missed", "Missade", "Missed"),
    ("r_wakeups", "Väckningar undvikna", "Wake-ups avoided"),
    ("r_escalations", "Eskaleringar", "Escalations"),
    ("r_escalation_time", "Eskalering → på plats (medel / max)", "Escalation → on site (mean / max)"),
    ("r_alarms", "Larm", "Alarms"),
    ("r_unacked", "ej kvitterade", "unacknowledged"),
    ("r_alarm_ack_time", "Larm → kvitterat (medel / max)", "Alarm → acknowledged (mean / max)"),
    ("r_alarm_time", "Larm → på plats (medel / max)", "Alarm → on site (mean / max)"),
    ("r_alarm_resolved_time", "Larm → åtgärdat (medel / max)", "Alarm → resolved (mean / max)"),
    ("chart_response", "Svarstider per natt (medel, minuter)", "Response times per night (mean, minutes)"),
    ("no_response_times", "Inga eskaleringar eller kvitterade larm under nattens pass den här månaden.", "No escalations or acknowledged alarms during night shifts this month."),
    ("total", "Totalt", "Total"),
    ("no_rounds", "Inga rundor den här månaden.", "No rounds this month."),
    // Admin
    ("nav_admin", "Admin", "Admin"),
    ("admin_title", "Användare", "Users"),
    ("col_name", "Namn", "Name"),
    ("col_role", "Roll", "Role"),
    ("col_teams", "Team", "Teams"),
    ("col_locked", "Låst till", "Locked until"),
    ("new_user", "Ny eller ändrad användare", "New or changed user"),
    ("password", "Lösenord (minst 10 tecken)", "Password (at least 10 characters)"),
    ("teams_hint", "Team, kommaseparerade", "Teams, comma-separated"),
    ("save", "Spara", "Save"),
    ("remove", "Ta bort", "Remove"),
    ("audit_export", "Exportera granskningsloggen (CSV)", "Export the audit log (CSV)"),
    ("audit_verify", "Kontrollera granskningsloggens kedja", "Verify the audit log's chain"),
    ("edit_plan", "Hela vårdplanen som JSON (avancerat)", "The whole care plan as JSON (advanced)"),
    ("plan_json", "Vårdplan (JSON, som i API:t)", "Care plan (JSON, as in the API)"),
    ("plan_form", "Nattens tillsyner, undantagna nätter och samtycke", "Night checks, opted-out nights and consent"),
    ("tolerance", "Marginal (± min)", "Tolerance (± min)"),
    ("check_add", "Lägg till tillsyn", "Add a check"),
    ("opted_out_input", "Nätter utan tillsyn (kvällens datum, kommaseparerade)", "Nights without checks (the evening's date, comma-separated)"),
    ("consent_windows", "Kamerafönster (t.ex. 22:00-06:00)", "Camera windows (e.g. 22:00-06:00)"),
    ("consent_given", "Samtycke givet", "Consent given"),
    ("consent_basis", "Grund (samtycke eller beslut)", "Basis (consent or decision)"),
    ("consent_hint", "Lämna fönster, datum och grund tomma om kameran inte får användas. Enheten vägrar kameratillsyn utanför fönstren.", "Leave windows, date and basis empty if the camera may not be used. The device refuses camera checks outside the windows."),
    ("new_person", "Ny person", "New person"),
    ("person_id", "Id (små bokstäver, siffror, -)", "Id (lowercase letters, digits, -)"),
    ("position", "Position (lat, lon)", "Position (lat, lon)"),
    ("patrols_edit", "Patruller i nattens pass", "Patrols of the night shift"),
    ("patrol_id", "Id", "Id"),
    ("shift", "Pass", "Shift"),
    ("patrol_start", "Start (lat, lon)", "Start (lat, lon)"),
    ("patrol_end", "Slut (lat, lon)", "End (lat, lon)"),
    ("patrol_end_same", "samma som start", "same as start"),
    ("shift_start", "Passet börjar", "Shift starts"),
    ("shift_end", "Passet slutar", "Shift ends"),
    ("edit", "Ändra", "Edit"),
    // Calibrating a camera's bed zone
    ("cal_title", "Sängzon", "Bed zone"),
    ("cal_button", "Kalibrera bädd", "Calibrate bed"),
    ("cal_hint", "Enheten skickar en suddig kalibreringsbild bara när installatörsläget är på vid enheten (vaka-agent camera installer-mode --minutes 30). Bilden sparas aldrig och varje visning loggas.", "The device sends a blurred calibration picture only while installer mode is on at the device (vaka-agent camera installer-mode --minutes 30). The picture is never stored and every view is logged."),
    ("cal_no_zone", "Ingen sängzon sparad i navet.", "No bed zone stored at the hub."),
    ("cal_set_by", "satt av", "set by"),
    ("cal_drag", "Dra hörnen till sängens hörn, eller välj ett hörn med Tab och flytta det med piltangenterna (Skift: större steg).", "Drag the corners to the bed's corners, or pick a corner with Tab and move it with the arrow keys (Shift: bigger steps)."),
    ("cal_save", "Spara sängzonen", "Save the bed zone"),
    ("cal_waiting", "Väntar på kalibreringsbilden…", "Waiting for the calibration picture…"),
    ("cal_refused", "Enheten nekade", "The device refused"),
    ("cal_ready", "Bilden visas till", "The picture is shown until"),
    ("cal_expired", "Ingen kalibreringsbild (tiden gick ut).", "No calibration picture (its time ran out)."),
    ("cal_saved", "Sängzonen är sparad och skickad till enheten.", "The bed zone is saved and sent to the device."),
    ("cal_saved_config", "Sängzonen är sparad; enheten får den med sin konfiguration.", "The bed zone is saved; the device gets it with its configuration."),
    ("cal_corner", "Hörn", "Corner"),
    ("kind_installer_mode", "Installatörsläge på", "Installer mode on"),
];

/// Words the page script needs.
const SCRIPT_KEYS: &[&str] = &[
    "live", "offline", "connecting", "snapshot_waiting", "snapshot_removed", "snapshot_failed", "snapshot_alt",
    "seconds_left", "test_check_sent", "first_event_seen", "failed", "ago", "unacked_banner", "revoke_needs_reason",
];

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "sv" => Some(Lang::Sv),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Sv => Lang::En,
            Lang::En => Lang::Sv,
        }
    }

    /// The language of the request's `vaka_lang` cookie, Swedish without one.
    pub fn of(headers: &HeaderMap) -> Lang {
        super::login::cookie(headers, LANG_COOKIE).and_then(|c| Lang::parse(&c)).unwrap_or_default()
    }

    fn word(self, key: &str) -> Option<&'static str> {
        WORDS.iter().find(|(k, _, _)| *k == key).map(|&(_, sv, en)| match self {
            Lang::Sv => sv,
            Lang::En => en,
        })
    }

    pub fn t(self, key: &'static str) -> &'static str {
        self.word(key).unwrap_or(key)
    }

    /// The word for a wire name (`state_visit`, `kind_geofence_left`…), or the wire name.
    pub fn t_of(self, prefix: &str, name: &str) -> String {
        self.word(&format!("{prefix}_{name}")).map_or_else(|| name.replace('_', " "), str::to_string)
    }

    pub fn script_words(self) -> String {
        let map: serde_json::Map<String, serde_json::Value> =
            SCRIPT_KEYS.iter().map(|k| (k.to_string(), self.t(k).into())).collect();
        // Safe inside <script type="application/json">: no "</" can end the element early.
        serde_json::Value::Object(map).to_string().replace("</", "<\\/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_console_uses_is_in_the_table_once_with_both_languages() {
        let mut seen = std::collections::BTreeSet::new();
        for (k, sv, en) in WORDS {
            assert!(seen.insert(*k), "key `{k}` twice");
            assert!(!sv.is_empty() && !en.is_empty(), "key `{k}` lacks a word");
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
        let mut used = std::collections::BTreeSet::new();
        for file in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap_or_default();
            for part in text.split(".t(\"").skip(1) {
                used.insert(part.split('"').next().unwrap().to_string());
            }
        }
        for k in SCRIPT_KEYS {
            used.insert(k.to_string());
        }
        let missing: Vec<_> = used.iter().filter(|k| !seen.contains(k.as_str())).collect();
        assert!(missing.is_empty(), "keys used but not in WORDS: {missing:?}");
        assert_eq!(Lang::En.t("nav_now"), "Now");
        assert_eq!(Lang::Sv.t_of("state", "visit"), "Besök");
        assert_eq!(Lang::Sv.t_of("kind", "some_new_kind"), "some new kind");
    }
}
