//! Permissions a handler can require by naming one in its signature (`Auth<OperateVms>`). Each maps
//! to the roles allowed by REFERENCE.md's role table.

use api::v1::Role;

pub trait Permission: Send + Sync + 'static {
    /// Shown in the 403 message, so an operator knows what they lack.
    const DESCRIPTION: &'static str;
    fn allows(role: Role) -> bool;
}

/// See everything: every signed-in role.
pub struct ViewInventory;
impl Permission for ViewInventory {
    const DESCRIPTION: &'static str = "view the inventory";
    fn allows(_role: Role) -> bool {
        true
    }
}

/// Start, stop and restart VMs: VM operator and up.
pub struct OperateVms;
impl Permission for OperateVms {
    const DESCRIPTION: &'static str = "start, stop and restart VMs";
    fn allows(role: Role) -> bool {
        matches!(role, Role::PoolAdmin | Role::PoolOperator | Role::VmOperator)
    }
}

/// Users, roles and global settings: pool admin only.
pub struct AdministerPool;
impl Permission for AdministerPool {
    const DESCRIPTION: &'static str = "manage users and global settings";
    fn allows(role: Role) -> bool {
        role == Role::PoolAdmin
    }
}

/// Compute offerings, host enable/disable/maintenance/removal, deploying to a chosen host, migrating:
/// pool admins and pool operators.
pub struct ManagePool;
impl Permission for ManagePool {
    const DESCRIPTION: &'static str = "manage hosts, offerings and VM placement";
    fn allows(role: Role) -> bool {
        matches!(role, Role::PoolAdmin | Role::PoolOperator)
    }
}

/// HA switches, the failure limit, and VMs' restart priority/order: pool admins and pool operators.
pub struct ManageHa;
impl Permission for ManageHa {
    const DESCRIPTION: &'static str = "change HA settings";
    fn allows(role: Role) -> bool {
        matches!(role, Role::PoolAdmin | Role::PoolOperator)
    }
}

/// Out-of-band management: configure BMCs, the OOBM switches, power actions, BMC passwords: pool
/// admins and pool operators.
pub struct ManageOobm;
impl Permission for ManageOobm {
    const DESCRIPTION: &'static str = "configure out-of-band management and issue power actions";
    fn allows(role: Role) -> bool {
        matches!(role, Role::PoolAdmin | Role::PoolOperator)
    }
}

/// Read the audit log: pool admins and pool operators.
pub struct ReadAudit;
impl Permission for ReadAudit {
    const DESCRIPTION: &'static str = "read the audit log";
    fn allows(role: Role) -> bool {
        matches!(role, Role::PoolAdmin | Role::PoolOperator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_may_view_but_not_operate() {
        assert!(ViewInventory::allows(Role::ReadOnly));
        assert!(!OperateVms::allows(Role::ReadOnly));
        assert!(OperateVms::allows(Role::VmOperator));
        assert!(!AdministerPool::allows(Role::PoolOperator));
        assert!(AdministerPool::allows(Role::PoolAdmin));
    }
}
