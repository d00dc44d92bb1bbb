//! The ingest CPU path for a ~2 KB Meta notification: verify the signature, parse into typed
//! structs and domain messages, and build every write (DynamoDB item, queue job and its body).
//! `floor` measures HMAC verification plus the typed parse alone, the least any handler must do.

use std::hint::black_box;

use concierge::channels::meta::{self, payload::StrictNotification, signature};
use concierge::clock::ManualClock;
use concierge::domain::{InboundMessage, TenantId};
use concierge::ingest::{Attempt, prepare};
use concierge::privacy::Pseudonymizer;
use concierge::queue::message_group;
use concierge::store::keys;
use concierge::store::messages::dynamo::inbound_item;
use concierge::tenants::Tenant;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

// As in the function binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &[u8] = b"bench-app-secret";

/// Three messages from two contacts, as Meta formats them (escaped non-ASCII), padded to ~2 KB.
fn payload() -> Vec<u8> {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"200000000000001","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"100000000000001"},"contacts":[{"profile":{"name":"J\u00fcrgen M\u00fcller"},"wa_id":"4915112345678"},{"profile":{"name":"Ana Garc\u00eda"},"wa_id":"34600111222"}],"messages":[{"from":"4915112345678","id":"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBEMjc3RTY3QjVGQkYwNjFBAA==","timestamp":"1767225600","type":"text","text":{"body":"Hallo! Habt ihr am Samstag ge\u00f6ffnet? Ich h\u00e4tte gern einen Termin f\u00fcr eine professionelle Zahnreinigung, am liebsten vormittags zwischen neun und elf Uhr. Geht das auch kurzfristig, also schon diese Woche? Und was kostet die Behandlung ungef\u00e4hr, wenn ich gesetzlich versichert bin?"}},{"from":"4915112345678","id":"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBEMjc3RTY3QjVGQkYwNjFCAA==","timestamp":"1767225604","type":"text","text":{"body":"Ach ja, und parkt man bei euch im Hof oder besser an der Stra\u00dfe? Danke vorab!"}},{"from":"34600111222","id":"wamid.HBgLMzQ2MDAxMTEyMjIVAgASGBYzRUIwRDI3N0U2N0I1RkJGMDYxQwA=","timestamp":"1767225610","type":"image","image":{"caption":"\u00bfEsto es normal? Me duele desde ayer por la noche.","mime_type":"image/jpeg","sha256":"k9YSp8ml2v9uJg0z7gWZ7hgbVqHTn5hj0FvQ5jyeDME=","id":"1029384756473829"}}]}}]}]}"#;
    let mut bytes = body.as_bytes().to_vec();
    // Pad with JSON whitespace to the 2 KB the issue specifies.
    while bytes.len() < 2048 {
        bytes.insert(bytes.len() - 1, b' ');
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let body = payload();
    let header = signature::sign(SECRET, &body);
    let tenant = Tenant::new(TenantId::parse("acme-dental").unwrap());
    let pseudonyms = Pseudonymizer::new(b"bench-contact-hash-key");
    let clock = ManualClock::at(1_767_225_700_000);
    let messages = meta::parse_notification(&body).unwrap()[0].messages.len() as u64;
    let attempt = Attempt::new(&tenant, &clock);
    assert_eq!(messages, 3);
    // Everything one webhook writes for its messages: the item and the queue job of each,
    // with one keyed contact hash per contact (as `Ingest::by_contact` computes it).
    let writes = |messages: &[InboundMessage], attempt: &Attempt| {
        let mut group = (String::new(), String::new());
        for m in messages {
            let contact = m.contact.key();
            if group.0 != contact {
                group = (contact.clone(), message_group(&tenant.id, &pseudonyms.contact_key(&tenant.id, &contact)));
            }
            let key = keys::message_key(&tenant.id, m.channel, &pseudonyms.message_ref(m.channel, m.id.as_str()));
            let prepared = prepare(&tenant, m, &key, &contact, &group.1, attempt);
            black_box(inbound_item(&prepared.new).unwrap());
            black_box(serde_json::to_string(&prepared.queued.job).unwrap());
        }
    };

    let mut group = c.benchmark_group("meta_2kb");
    group.throughput(Throughput::Elements(messages));
    group.bench_function("floor_verify_and_typed_parse", |b| {
        b.iter(|| {
            signature::verify(SECRET, black_box(&body), Some(&header)).unwrap();
            let parsed: StrictNotification<'_> = serde_json::from_slice(black_box(&body)).unwrap();
            black_box(parsed);
        })
    });
    group.bench_function("part_verify", |b| {
        b.iter(|| signature::verify(SECRET, black_box(&body), Some(&header)).unwrap())
    });
    group.bench_function("part_parse_to_domain", |b| b.iter(|| meta::parse_notification(black_box(&body)).unwrap()));
    let parsed = meta::parse_notification(&body).unwrap();
    group.bench_function("part_prepare_writes", |b| b.iter(|| writes(black_box(&parsed[0].messages), &attempt)));
    group.bench_function("ingest_cpu_path", |b| {
        b.iter(|| {
            signature::verify(SECRET, black_box(&body), Some(&header)).unwrap();
            for updates in meta::parse_notification(black_box(&body)).unwrap() {
                // Once per webhook and tenant, as in `Ingest::tenant_updates`.
                let attempt = Attempt::new(&tenant, &clock);
                writes(&updates.messages, &attempt);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
