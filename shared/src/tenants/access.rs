//! What the reply worker needs of a tenant, from the same cached directory ingest uses: the
//! profile, the channel account with its token opened, and the knowledge-base documents (read
//! only when the worker's index for the tenant's current version is not built yet).

use std::sync::Arc;

use super::directory::{DynamoTenantDirectory, Tenant, TenantDirectory};
use super::records;
use crate::assistant::knowledge::KnowledgeDoc;
use crate::channels::outbound::{Account, MetaAccount, TwilioAccount};
use crate::domain::{Channel, TenantId};
use crate::reply::TenantAccess;
use crate::store::{StoreError, from_item};

impl TenantAccess for DynamoTenantDirectory {
    async fn tenant(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, StoreError> {
        self.by_id(id).await
    }

    async fn account(&self, tenant: &Tenant, channel: Channel) -> Result<Option<Account>, StoreError> {
        Ok(match channel {
            Channel::Meta => {
                let (Some(phone_number_id), Some(token)) =
                    (&tenant.meta_phone_number_id, self.meta_token(tenant).await?)
                else {
                    return Ok(None);
                };
                Some(Account::Meta(MetaAccount {
                    phone_number_id: phone_number_id.clone(),
                    access_token: token.to_string(),
                }))
            }
            Channel::Twilio => {
                let (Some(channel), Some(credentials)) = (&tenant.twilio, self.twilio_credentials(tenant).await?)
                else {
                    return Ok(None);
                };
                Some(Account::Twilio(TwilioAccount {
                    account_sid: credentials.account_sid.clone(),
                    auth_token: credentials.auth_token.clone(),
                    from: channel.from.clone(),
                }))
            }
        })
    }

    async fn knowledge(&self, tenant: &TenantId) -> Result<Vec<KnowledgeDoc>, StoreError> {
        records::knowledge_items(self.client(), self.tenants_table(), tenant, None)
            .await?
            .into_iter()
            .map(|item| from_item::<records::KnowledgeItem>("knowledge document", item).map(KnowledgeDoc::from))
            .collect()
    }
}
