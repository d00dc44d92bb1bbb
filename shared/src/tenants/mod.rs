//! Tenants: the file operators write, how it is stored, and how functions find a tenant.

mod access;
mod cache;
pub mod catalog;
pub mod directory;
pub mod file;
pub mod loader;
pub mod records;
pub mod settings;
pub mod suspension;

pub use catalog::{DynamoTenantCatalog, TenantCatalog};
pub use directory::{DynamoTenantDirectory, Tenant, TenantDirectory, TwilioCredentials};
pub use file::{TenantSpec, TenantsFile, TenantsFileError};
pub use loader::TenantLoader;
pub use settings::TenantSettings;
