//! CSV rows (RFC 4180) for subject exports. A field that a spreadsheet would run as a formula
//! (`=`, `+`, `-`, `@`, tab, CR first) is prefixed with `'`: export files are opened in
//! spreadsheets, and a customer's message must never execute there.

/// One row, ending in CRLF.
pub fn row<I, S>(fields: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(&mut out, field.as_ref());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn push_field(out: &mut Vec<u8>, field: &str) {
    let formula = field.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = formula || field.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for b in field.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quoted {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_they_must_be_and_formulas_are_defused() {
        assert_eq!(row(["a", "b c"]), b"a,b c\r\n");
        assert_eq!(row(["x,y", "say \"hi\"", "two\nlines"]), b"\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
        assert_eq!(row(["=HYPERLINK(\"x\")", "-1"]), b"\"'=HYPERLINK(\"\"x\"\")\",\"'-1\"\r\n");
        assert_eq!(row(["", "ü"]), ",ü\r\n".as_bytes());
    }
}
