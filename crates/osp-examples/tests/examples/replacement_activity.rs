//! The smallest useful workflow test: OSP's `createServiceWorkflow` on a real Temporal dev
//! server, its `createEntity` activity replaced by a closure that records its input.

use osp_core::activities::defs;
use osp_core::payloads::ServiceData;
use osp_testkit::{Calls, test_env};
use osp_workflows::CreateServiceWorkflow;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn create_service_returns_the_row_create_entity_stored() -> anyhow::Result<()> {
    let env = test_env().await?;
    let calls = Calls::new();
    let create_entity = calls.record(|data: ServiceData| async move {
        let row = json!({"id": Uuid::nil(), "name": data.name, "metadata": {}, "created_at": ""});
        Ok(serde_json::from_value(row)?)
    });
    let input = serde_json::from_value(json!({"name": "billing"}))?;
    let service = (env.worker().workflow::<CreateServiceWorkflow>())
        .replace(defs::CreateEntity, create_entity)
        .execute(CreateServiceWorkflow::run, input)
        .await?;
    assert_eq!(service.name, "billing");
    assert_eq!(calls.inputs()[0].name, "billing");
    Ok(())
}
