//! API track 0.2 (`modelcall:plugin@0.2.x`, `wit/plugin.wit`, the current one): the shared
//! bindings of [`super::track::track_bindings`] and what 0.2 changed: a preprocessor's `keep`
//! holds one result per item, and a score parser may answer `failed(plugin-error)`.

super::track::track_bindings!("../../../wit");

/// The track these bindings implement, as `loader::track_of` spells it.
pub(crate) const TRACK: &str = "0.2";

fn outcome(o: pp::Outcome) -> PreprocessOutcome {
    match o {
        pp::Outcome::Keep(items) => PreprocessOutcome::Keep(
            items.into_iter().map(|item| item.map_err(|e| crate::types::ItemError { kind: e.kind.into(), message: e.message, location: e.location })).collect(),
        ),
        pp::Outcome::Skip(reason) => PreprocessOutcome::Skip(reason),
    }
}

fn parse_answer(answer: Result<sp::Score, sp::ParseError>) -> GuestParse {
    match answer {
        Ok(score) => GuestParse::Score(score.into()),
        Err(sp::ParseError::Retry(hint)) => GuestParse::Retry(hint),
        Err(sp::ParseError::Invalid(message)) => GuestParse::Invalid(message),
        Err(sp::ParseError::Failed(e)) => GuestParse::Failed(e.into()),
    }
}
