/// Appends the schemas of a struct's or tuple's fields, comma-separated, skipping fields that encode
/// to nothing (unit structs, `()`, `PhantomData`) so that nesting never changes the result.
///
/// The derive calls this; a hand-written [`MigrationKey`](crate::MigrationKey) impl of a compound
/// type can too.
pub fn schema_fields(out: &mut String, fields: &[fn(&mut String)]) {
    let mut wrote_any = false;
    for write in fields {
        let mark = out.len();
        write(out);
        if out.len() > mark {
            if wrote_any {
                out.insert(mark, ',');
            }
            wrote_any = true;
        }
    }
}

/// Appends `name<inner>`.
pub(crate) fn wrapped(out: &mut String, name: &str, inner: fn(&mut String)) {
    out.push_str(name);
    out.push('<');
    inner(out);
    out.push('>');
}
