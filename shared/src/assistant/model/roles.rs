//! Anthropic and Bedrock require user and assistant messages to alternate, while the port's
//! turns may not (tool results follow as a user message, a user may write twice): consecutive
//! blocks of the same role become one message.

use super::Turn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Assistant,
}

/// The turns as alternating messages, each turn's blocks made by `blocks`. Messages left empty
/// (an assistant turn with no text and no call) are dropped, as both vendors refuse them.
pub(crate) fn alternating<B>(turns: &[Turn], mut blocks: impl FnMut(&Turn) -> Vec<B>) -> Vec<(Role, Vec<B>)> {
    let mut out: Vec<(Role, Vec<B>)> = Vec::new();
    for turn in turns {
        let role = match turn {
            Turn::Assistant { .. } => Role::Assistant,
            Turn::User(_) | Turn::ToolResults(_) => Role::User,
        };
        let new = blocks(turn);
        if new.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(new),
            _ => out.push((role, new)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::model::ToolResult;

    #[test]
    fn same_role_turns_merge_and_empty_ones_vanish() {
        let turns = vec![
            Turn::User("a".into()),
            Turn::User("b".into()),
            Turn::Assistant { text: None, tool_calls: vec![] },
            Turn::Assistant { text: Some("c".into()), tool_calls: vec![] },
            Turn::ToolResults(vec![ToolResult {
                call_id: "1".into(),
                name: "t".into(),
                content: "{}".into(),
                is_error: false,
            }]),
            Turn::User("d".into()),
        ];
        let out = alternating(&turns, |t| match t {
            Turn::User(s) => vec![s.clone()],
            Turn::Assistant { text, .. } => text.iter().cloned().collect(),
            Turn::ToolResults(r) => r.iter().map(|r| r.call_id.clone()).collect(),
        });
        assert_eq!(
            out,
            vec![
                (Role::User, vec!["a".to_owned(), "b".to_owned()]),
                (Role::Assistant, vec!["c".to_owned()]),
                (Role::User, vec!["1".to_owned(), "d".to_owned()]),
            ]
        );
    }
}
