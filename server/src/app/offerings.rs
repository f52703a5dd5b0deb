//! Compute offerings: validated create, edit and delete.

use super::AppError;
use crate::db::{Db, NewOffering, OfferingChanges};
use api::OfferingId;
use api::v1::{ComputeOffering, CreateOfferingRequest, UpdateOfferingRequest};

fn check_name(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(AppError::bad_request("invalid-name", "name must be 1 to 64 characters"));
    }
    Ok(())
}

fn check_resources(cpu_cores: u32, cpu_mhz: u32, memory_mb: u64) -> Result<(), AppError> {
    if !(1..=256).contains(&cpu_cores) {
        return Err(AppError::bad_request("invalid-cpu-cores", "cpu_cores must be 1 to 256"));
    }
    if !(100..=10_000).contains(&cpu_mhz) {
        return Err(AppError::bad_request("invalid-cpu-mhz", "cpu_mhz (per core) must be 100 to 10000"));
    }
    if !(64..=4 * 1024 * 1024).contains(&memory_mb) {
        return Err(AppError::bad_request("invalid-memory", "memory_mb must be 64 to 4194304"));
    }
    Ok(())
}

fn check_tags(tags: &[String]) -> Result<(), AppError> {
    let valid = |tag: &String| {
        !tag.is_empty()
            && tag.len() <= 64
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match tags.iter().find(|tag| !valid(tag)) {
        Some(tag) => Err(AppError::bad_request(
            "invalid-host-tag",
            format!("host_tags: {tag:?} is not 1 to 64 letters, digits, '-', '_' or '.'"),
        )),
        None => Ok(()),
    }
}

pub async fn create(db: &Db, request: CreateOfferingRequest) -> Result<ComputeOffering, AppError> {
    check_name(&request.name)?;
    check_resources(request.cpu_cores, request.cpu_mhz, request.memory_mb)?;
    check_tags(&request.host_tags)?;
    Ok(db
        .offering_insert(NewOffering {
            name: request.name.trim(),
            description: &request.description,
            cpu_cores: request.cpu_cores,
            cpu_mhz: request.cpu_mhz,
            memory_mb: request.memory_mb,
            host_tags: &request.host_tags,
            offer_ha: request.offer_ha,
        })
        .await?)
}

pub async fn update(db: &Db, id: OfferingId, request: UpdateOfferingRequest) -> Result<ComputeOffering, AppError> {
    let current =
        db.offering_fetch(id).await?.ok_or_else(|| AppError::NotFound(format!("no compute offering with id {id}")))?;
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    check_resources(
        request.cpu_cores.unwrap_or(current.cpu_cores),
        request.cpu_mhz.unwrap_or(current.cpu_mhz),
        request.memory_mb.unwrap_or(current.memory_mb),
    )?;
    if let Some(tags) = &request.host_tags {
        check_tags(tags)?;
    }
    let changes = OfferingChanges {
        name: request.name.as_deref().map(str::trim),
        description: request.description.as_deref(),
        cpu_cores: request.cpu_cores,
        cpu_mhz: request.cpu_mhz,
        memory_mb: request.memory_mb,
        host_tags: request.host_tags.as_deref(),
        offer_ha: request.offer_ha,
    };
    db.offering_update(id, changes)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no compute offering with id {id}")))
}

pub async fn delete(db: &Db, id: OfferingId) -> Result<(), AppError> {
    if db.offering_delete(id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("no compute offering with id {id}")))
    }
}
