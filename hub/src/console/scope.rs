//! Which homes a caller sees: the people of their teams ([`crate::access::Teams`]), those
//! people's devices (from the care plans), and what those devices sent and were asked.
//!
//! Outside their teams a caller gets what a stranger would: a person, device or check of
//! another team answers 404 (as if it did not exist), lists leave it out, the live stream does
//! not carry it. A device in no care plan yet belongs to no team: installers and administrators
//! see it (they are setting it up), care staff do not.

use super::api::{read, ApiError};
use super::AppState;
use crate::access::{Principal, Role, Teams};
use crate::rounds::plan::Recipient;
use std::collections::HashMap;

pub struct Scope {
    teams: Teams,
    role: Role,
    /// Device → the team of the person whose home it is in (only when `teams` is not all).
    device_team: HashMap<String, String>,
}

impl Scope {
    pub async fn of(state: &AppState, who: &Principal) -> Result<Scope, ApiError> {
        match who.teams {
            Teams::All => Ok(Scope::with(who, &[])),
            Teams::Only(_) => Ok(Scope::with(who, &read(state, |s| s.recipients()).await?)),
        }
    }

    /// The scope from care plans the caller has already read (all of them).
    pub fn with(who: &Principal, recipients: &[Recipient]) -> Scope {
        let device_team = match who.teams {
            Teams::All => HashMap::new(),
            Teams::Only(_) => recipients
                .iter()
                .flat_map(|r| r.devices.iter().chain(&r.camera_device).map(|d| (d.clone(), r.team.clone())))
                .collect(),
        };
        Scope { teams: who.teams.clone(), role: who.role, device_team }
    }

    pub fn sees_device(&self, device: &str) -> bool {
        match (&self.teams, self.device_team.get(device)) {
            (Teams::All, _) => true,
            (Teams::Only(_), Some(team)) => self.teams.sees(team),
            (Teams::Only(_), None) => matches!(self.role, Role::Installer | Role::Admin),
        }
    }

    /// 404 for a device outside the caller's teams, worded as for one that does not exist.
    pub fn device(&self, device: &str) -> Result<(), ApiError> {
        match self.sees_device(device) {
            true => Ok(()),
            false => Err(ApiError::not_found(format!("unknown device `{}`", device.chars().take(64).collect::<String>()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(role: Role, teams: Teams) -> Scope {
        let device_team = [("home-a".to_string(), "centrum".to_string()), ("home-b".to_string(), "byar".to_string())].into();
        Scope { teams, role, device_team }
    }

    #[test]
    fn staff_see_the_devices_of_their_teams_and_installers_also_unassigned_ones() {
        let centrum = || Teams::Only(["centrum".to_string()].into());
        let staff = scope(Role::NightStaff, centrum());
        assert!(staff.sees_device("home-a"));
        assert!(!staff.sees_device("home-b"));
        assert!(!staff.sees_device("home-new"));
        assert!(staff.device("home-b").is_err());
        let installer = scope(Role::Installer, centrum());
        assert!(installer.sees_device("home-new") && !installer.sees_device("home-b"));
        let admin = scope(Role::Admin, Teams::All);
        assert!(admin.sees_device("home-b") && admin.sees_device("home-new"));
    }
}
