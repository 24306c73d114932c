//! API track 0.1 (`modelcall:plugin@0.1.x`, frozen in `wit/since_v0.1/`): the shared
//! bindings of [`super::track::track_bindings`] and the two answers 0.1 spells its own way.
//! A 0.1 preprocessor keeps plain records; a 0.1 score parser has no `failed` case.

super::track::track_bindings!("../../../wit/since_v0.1");

/// The track these bindings implement, as `loader::track_of` spells it.
pub(crate) const TRACK: &str = "0.1";

fn outcome(o: pp::Outcome) -> PreprocessOutcome {
    match o {
        pp::Outcome::Keep(records) => PreprocessOutcome::keep_records(records),
        pp::Outcome::Skip(reason) => PreprocessOutcome::Skip(reason),
    }
}

fn parse_answer(answer: Result<sp::Score, sp::ParseError>) -> GuestParse {
    match answer {
        Ok(score) => GuestParse::Score(score.into()),
        Err(sp::ParseError::Retry(hint)) => GuestParse::Retry(hint),
        Err(sp::ParseError::Invalid(message)) => GuestParse::Invalid(message),
    }
}
