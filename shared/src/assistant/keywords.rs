//! Keywords, checked before any model call: consent changes (opt-out, opt-in) and asking for a
//! person must work whatever a model would make of them, in any language the customer writes.
//! Consent changes count only as the whole message, so a sentence that happens to contain "stop"
//! never unsubscribes anyone.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::tenants::settings::{KeywordSet, TenantSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
    Handoff,
}

/// Longer messages that mention a handoff word are questions for the assistant, not requests
/// for a person ("what does your travel agent package include…").
const MAX_HANDOFF_WORDS: usize = 8;

struct Language {
    opt_out: &'static [&'static str],
    opt_in: &'static [&'static str],
    handoff: &'static [&'static str],
}

// "cancel" and "yes" (common carrier keywords) are left out on purpose: in customer service
// they are about a booking or an answer to the assistant, not about consent.
const BUILT_IN: [Language; 7] = [
    // en
    Language {
        opt_out: &["stop", "stopall", "stop all", "unsubscribe", "end", "quit", "optout", "opt out"],
        opt_in: &["start", "unstop", "subscribe", "optin", "opt in"],
        handoff: &[
            "human",
            "agent",
            "operator",
            "representative",
            "real person",
            "live person",
            "talk to a person",
            "speak to a person",
            "talk to someone",
            "speak to someone",
            "talk to somebody",
            "speak to somebody",
        ],
    },
    // es
    Language {
        opt_out: &["baja", "darme de baja", "dar de baja", "desuscribir", "desuscribirme", "cancelar suscripción"],
        opt_in: &["alta", "darme de alta", "suscribir", "suscribirme"],
        handoff: &[
            "humano",
            "agente",
            "operador",
            "asesor",
            "persona real",
            "hablar con alguien",
            "hablar con una persona",
        ],
    },
    // de
    Language {
        opt_out: &["stopp", "abmelden", "abbestellen", "austragen"],
        opt_in: &["anmelden", "wieder anmelden"],
        handoff: &["mensch", "mitarbeiter", "mitarbeiterin", "berater", "beraterin", "echte person", "echten menschen"],
    },
    // fr
    Language {
        opt_out: &["arrêt", "arrêter", "désinscrire", "désinscription", "désabonner", "désabonnement"],
        opt_in: &["s'abonner", "abonner", "inscrire", "réabonner"],
        handoff: &[
            "humain",
            "conseiller",
            "conseillère",
            "opérateur",
            "opératrice",
            "vraie personne",
            "parler à quelqu'un",
        ],
    },
    // it
    Language {
        opt_out: &["disiscrivi", "disiscrivimi", "annulla iscrizione", "cancellami"],
        opt_in: &["iscrivi", "iscrivimi", "riattiva"],
        handoff: &["operatore", "operatrice", "umano", "persona reale", "parlare con qualcuno"],
    },
    // pt
    Language {
        opt_out: &["sair", "parar", "descadastrar", "cancelar inscrição"],
        opt_in: &["inscrever", "voltar a receber"],
        handoff: &["atendente", "humano", "operador", "pessoa real", "falar com alguém"],
    },
    // nl
    Language {
        opt_out: &["afmelden", "uitschrijven"],
        opt_in: &["aanmelden", "inschrijven"],
        handoff: &["medewerker", "medewerkster", "echt persoon", "echte persoon", "een mens"],
    },
];

/// The built-in keywords of every language, normalised once.
struct Sets {
    opt_out: HashSet<String>,
    opt_in: HashSet<String>,
    handoff: Vec<String>,
}

static BUILT_IN_SETS: LazyLock<Sets> = LazyLock::new(|| {
    let all = |pick: fn(&Language) -> &'static [&'static str]| BUILT_IN.iter().flat_map(pick).map(|k| normalise(k));
    Sets {
        opt_out: all(|l| l.opt_out).collect(),
        opt_in: all(|l| l.opt_in).collect(),
        handoff: all(|l| l.handoff).collect(),
    }
});

/// The keyword a message is, if any. The customer's language is unknown, so every language's
/// keywords apply, the tenant's own included. Opt-out is checked first: a customer who wants to
/// stop must not be handed to a person instead.
pub fn detect(text: &str, settings: &TenantSettings) -> Option<Keyword> {
    let message = normalise(text);
    if message.is_empty() {
        return None;
    }
    let sets = &*BUILT_IN_SETS;
    let tenant =
        |pick: fn(&KeywordSet) -> &Vec<String>| settings.keywords.values().flat_map(pick).map(|k| normalise(k));
    if sets.opt_out.contains(&message) || tenant(|s| &s.opt_out).any(|k| k == message) {
        return Some(Keyword::OptOut);
    }
    if sets.opt_in.contains(&message) || tenant(|s| &s.opt_in).any(|k| k == message) {
        return Some(Keyword::OptIn);
    }
    let short = message.split(' ').count() <= MAX_HANDOFF_WORDS;
    let padded = format!(" {message} ");
    let asks_for_person = |keyword: &str| {
        !keyword.is_empty() && (keyword == message || (short && padded.contains(&format!(" {keyword} "))))
    };
    let handoff =
        sets.handoff.iter().any(|k| asks_for_person(k)) || tenant(|s| &s.handoff).any(|k| asks_for_person(&k));
    handoff.then_some(Keyword::Handoff)
}

/// Lower case, accents folded, anything but letters and digits (punctuation, emoji) as single
/// spaces between words: `" ¡ARRÊT! "` → `arret`, `opt-out` → `opt out`.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            match fold(c) {
                Some(plain) => out.push_str(plain),
                None => out.push(c),
            }
        } else {
            pending_space = true;
        }
    }
    out
}

/// The unaccented spelling of the accented lower-case Latin letters the supported languages use.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'ç' | 'ć' | 'č' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ė' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'ñ' | 'ń' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => "o",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => "u",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_default(text: &str) -> Option<Keyword> {
        detect(text, &TenantSettings::default())
    }

    #[test]
    fn a_message_that_is_only_an_opt_out_word_opts_out() {
        for text in
            ["STOP", "stop.", " Stop! ", "Unsubscribe", "opt-out", "OPT OUT", "BAJA", "Stopp", "abmelden", "🛑 stop 🛑"]
        {
            assert_eq!(detect_default(text), Some(Keyword::OptOut), "{text:?}");
        }
    }

    #[test]
    fn accents_are_folded_both_ways() {
        assert_eq!(detect_default("ARRÊT"), Some(Keyword::OptOut));
        assert_eq!(detect_default("arret"), Some(Keyword::OptOut));
        assert_eq!(detect_default("desinscrire"), Some(Keyword::OptOut));
        assert_eq!(detect_default("¿Puedo hablar con un HUMANO?"), Some(Keyword::Handoff));
    }

    #[test]
    fn stop_inside_a_sentence_never_opts_out() {
        for text in ["can you stop by tomorrow?", "don't stop", "please stop sending these", "the end of the month"] {
            assert_ne!(detect_default(text), Some(Keyword::OptOut), "{text:?}");
        }
    }

    #[test]
    fn a_message_that_is_only_an_opt_in_word_opts_in() {
        for text in ["START", "unstop", "Alta", "ANMELDEN!"] {
            assert_eq!(detect_default(text), Some(Keyword::OptIn), "{text:?}");
        }
        assert_eq!(detect_default("when do you start the sale?"), None);
    }

    #[test]
    fn a_short_message_asking_for_a_person_is_a_handoff() {
        for text in [
            "human",
            "Agent please",
            "I want to talk to a human",
            "can I talk to someone?",
            "¿Puedo hablar con un humano?",
            "Ich möchte einen Mitarbeiter sprechen",
            "un conseiller svp",
            "vorrei un operatore",
            "quero falar com um atendente",
            "een medewerker graag",
        ] {
            assert_eq!(detect_default(text), Some(Keyword::Handoff), "{text:?}");
        }
    }

    #[test]
    fn a_long_question_mentioning_an_agent_is_not_a_handoff() {
        let text = "what does your travel agent package include and how much is it for two people in june";
        assert_eq!(detect_default(text), None);
        assert_eq!(detect_default("is the agency open on sunday?"), None);
    }

    #[test]
    fn opt_out_wins_over_handoff() {
        let mut settings = TenantSettings::default();
        settings.keywords.insert("en".into(), KeywordSet { handoff: vec!["stop".into()], ..Default::default() });
        assert_eq!(detect("STOP", &settings), Some(Keyword::OptOut));
    }

    #[test]
    fn a_tenant_keyword_works_in_any_language() {
        assert_eq!(detect_default("Basta!"), None);
        let mut settings = TenantSettings::default();
        settings.keywords.insert(
            "it".into(),
            KeywordSet {
                opt_out: vec!["basta".into()],
                opt_in: vec!["Ricomincia".into()],
                handoff: vec!["titolare".into()],
            },
        );
        assert_eq!(detect("Basta!", &settings), Some(Keyword::OptOut));
        assert_eq!(detect("ricomincia", &settings), Some(Keyword::OptIn));
        assert_eq!(detect("posso parlare con il titolare?", &settings), Some(Keyword::Handoff));
        assert_eq!(detect("basta con le domande, quanto costa?", &settings), None);
    }

    #[test]
    fn empty_and_emoji_only_messages_are_no_keyword() {
        assert_eq!(detect_default(""), None);
        assert_eq!(detect_default("  👍 !! "), None);
    }
}
