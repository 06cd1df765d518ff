//! Activity contracts: typed definitions that `osp-activities` implements and
//! `osp-workflows` calls, so workflows never link the database crates. The registered names
//! are fixed so workers in other languages can serve or call them.

use temporalio_common::ActivityError;
use temporalio_macros::activity_definitions;

use crate::payloads::{Service, ServiceData};

/// `createEntity`: start-to-close 30 s, at most 3 attempts (the seed's Node worker).
pub const CREATE_ENTITY: &str = "createEntity";

pub use definitions::{OspActivities, defs};

#[expect(
    missing_debug_implementations,
    reason = "the SDK's macro generates the marker structs without Debug"
)]
mod definitions {
    use super::{ActivityError, Service, ServiceData, activity_definitions};

    /// The activity definitions; call them from workflows as `OspActivities::create_entity`.
    #[derive(Debug)]
    pub struct OspActivities;

    #[activity_definitions]
    impl OspActivities {
        /// Inserts one `services` row for the calling workflow execution and returns it; a
        /// retry returns the row the first attempt wrote.
        #[activity(name = "createEntity")]
        pub fn create_entity(input: ServiceData) -> Result<Service, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types, for implementations: `#[activity(definition = defs::CreateEntity)]`.
    pub mod defs {
        pub use super::osp_activities::CreateEntity;
    }
}

/// Every activity name OSP registers, in a stable order.
pub const ALL_ACTIVITIES: &[&str] = &[CREATE_ENTITY];

#[cfg(test)]
mod tests {
    use temporalio_common::ActivityDefinition;

    use super::*;

    #[test]
    fn registered_names_match_the_contract() {
        assert_eq!(OspActivities::create_entity.name(), CREATE_ENTITY);
        assert_eq!(defs::CreateEntity.name(), CREATE_ENTITY);
    }
}
