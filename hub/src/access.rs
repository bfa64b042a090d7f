//! Who is asking, and what they may do.
//!
//! Every authenticated request carries a [`Principal`]: a name (for the audit log) and a
//! [`Role`], resolved from a bearer token or a login session (`console/auth.rs`).
//!
//! [`Role::may`] is the one place that says which role may do what. Invariants:
//! - seeing a camera snapshot, and asking for one, is for care staff only (`night_staff`,
//!   `nurse`): not installers, not administrators;
//! - the audit log and the console accounts are for administrators only;
//! - care plans and patrols are changed by nurses and administrators; round checks are decided
//!   and recorded by care staff; reports are for everyone but installers;
//! - alarms are handled (acknowledged, assigned, resolved) by care staff; devices are
//!   registered in homes, and cameras calibrated (the calibration picture, the bed zone), by
//!   installers and administrators;
//! - anything not listed in [`Permission`] (reading devices, events, checks) is open to every
//!   authenticated role;
//! - but only for the homes of the caller's [`Teams`]: a night nurse of one area does not see
//!   (or act on) the people, devices, checks and visits of another (`console/scope.rs`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    NightStaff,
    Nurse,
    Installer,
    Admin,
}

/// Something only some roles may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Ask a device to run a camera check now.
    RequestCameraCheck,
    /// Ask for, and look at, the one snapshot of a camera check.
    Snapshot,
    /// Read the audit log.
    ReadAudit,
    /// Change care plans and patrols.
    EditCarePlans,
    /// Decide on an unclear camera check, record a visit's outcome.
    HandleRoundChecks,
    /// Read the night and month reports.
    ReadReports,
    /// Create, change and remove console accounts.
    ManageUsers,
    /// Acknowledge, assign and resolve alarms.
    HandleAlarms,
    /// Register a device in a home and download its agent configuration.
    RegisterDevices,
    /// Draw a person's safe areas for their GPS tracker (the installer fits the tracker; the
    /// nurse keeps the plan).
    EditSafeAreas,
    /// Ask a camera for a calibration picture (only granted by the device while installer mode
    /// is on there), look at it, and set the camera's bed zone.
    CalibrateCamera,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::NightStaff, Role::Nurse, Role::Installer, Role::Admin];

    /// The config and wire name, e.g. `night_staff`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::NightStaff => "night_staff",
            Role::Nurse => "nurse",
            Role::Installer => "installer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Night staff and nurses: the people who look after the person.
    pub fn is_care_staff(self) -> bool {
        matches!(self, Role::NightStaff | Role::Nurse)
    }

    pub fn may(self, permission: Permission) -> bool {
        match permission {
            // An installer proves a new camera works; an admin may test the path.
            Permission::RequestCameraCheck => true,
            Permission::Snapshot => self.is_care_staff(),
            Permission::ReadAudit => self == Role::Admin,
            Permission::EditCarePlans => matches!(self, Role::Nurse | Role::Admin),
            Permission::HandleRoundChecks => self.is_care_staff(),
            Permission::ReadReports => self != Role::Installer,
            Permission::ManageUsers => self == Role::Admin,
            Permission::HandleAlarms => self.is_care_staff(),
            Permission::RegisterDevices => matches!(self, Role::Installer | Role::Admin),
            Permission::EditSafeAreas => self != Role::NightStaff,
            Permission::CalibrateCamera => matches!(self, Role::Installer | Role::Admin),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose homes a caller sees: the people (and their devices, checks and visits) of these
/// teams. Administrators and bearer tokens without `teams` see all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Teams {
    All,
    Only(BTreeSet<String>),
}

impl Teams {
    pub fn sees(&self, team: &str) -> bool {
        match self {
            Teams::All => true,
            Teams::Only(teams) => teams.contains(team),
        }
    }
}

/// An authenticated user of the API or console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Shown in the audit log, e.g. `anna.berg`; `admin` for the config's `api_token`.
    pub name: String,
    pub role: Role,
    pub teams: Teams,
}

impl Principal {
    pub fn may(&self, permission: Permission) -> bool {
        self.role.may(permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_care_staff_may_see_snapshots() {
        let allowed: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.may(Permission::Snapshot))
            .collect();
        assert_eq!(allowed, vec![Role::NightStaff, Role::Nurse]);
    }

    #[test]
    fn only_admins_may_read_the_audit_log_and_everyone_may_request_a_check() {
        let audit: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.may(Permission::ReadAudit))
            .collect();
        assert_eq!(audit, vec![Role::Admin]);
        assert!(Role::ALL
            .into_iter()
            .all(|r| r.may(Permission::RequestCameraCheck)));
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("doctor"), None);
    }
}
