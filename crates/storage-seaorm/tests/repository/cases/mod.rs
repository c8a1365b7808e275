//! The behaviours every backend must show, each written once as
//! `async fn behaviour(store: Store)`.

mod consultations;
mod documents;
mod inbox;
mod listing;
mod live;
mod migrations;
mod outbox;
mod payments;
mod practitioners;
mod sandbox;
mod users;

pub use consultations::*;
pub use documents::*;
pub use inbox::*;
pub use listing::*;
pub use live::*;
pub use migrations::*;
pub use outbox::*;
pub use payments::*;
pub use practitioners::*;
pub use sandbox::*;
pub use users::*;
