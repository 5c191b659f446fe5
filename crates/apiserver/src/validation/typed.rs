//! Structure of built-in kinds: an object is read as its typed k8s-openapi struct, so a value of
//! the wrong type is named by its path and a field the type does not know is found (reported
//! under `fieldValidation=Strict`, pruned otherwise).

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Findings;
use crate::error::Cause;

fn render_ignored(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", render_ignored(parent)),
        Path::Map { parent, key } => {
            let p = render_ignored(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => render_ignored(parent),
    }
}

fn render_tracked(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Enum { variant } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    s
}

/// Deserialize `obj` as its typed k8s-openapi form: a value of the wrong type becomes a cause
/// naming its path, a field the type does not know is listed in `unknown`.
pub fn typed<T: DeserializeOwned>(obj: &Value, out: &mut Findings) {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(obj, &mut track);
    let res: Result<T, _> = serde_ignored::deserialize(de, |p| unknown.push(render_ignored(&p)));
    if let Err(e) = res {
        let path = render_tracked(&track.path());
        let value = value_named(obj, &path).cloned().unwrap_or(Value::Null);
        out.causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            field: path,
            message: format!("Invalid value: {value}: {e}"),
        });
    }
    out.unknown.extend(unknown);
}

/// The value at a dotted path, for a message: good enough to show the offending value, so a
/// path through a list item (`ports[0]`) finds nothing.
fn value_named<'v>(obj: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| s.split('[').next().unwrap_or(s))
        .try_fold(obj, |v, key| v.get(key))
}

/// Remove fields named by dotted paths (`spec.foo`, `spec.ports[0].bar`).
pub fn prune(obj: &mut Value, paths: &[String]) {
    for p in paths {
        let mut parts: Vec<Step> = Vec::new();
        for piece in p.split('.') {
            let mut rest = piece;
            if let Some(i) = rest.find('[') {
                parts.push(Step::Key(rest[..i].to_string()));
                rest = &rest[i..];
                while let Some(end) = rest.find(']') {
                    if let Ok(n) = rest[1..end].parse() {
                        parts.push(Step::Index(n));
                    }
                    rest = &rest[end + 1..];
                }
            } else {
                parts.push(Step::Key(rest.to_string()));
            }
        }
        remove_steps(obj, &parts);
    }
}

enum Step {
    Key(String),
    Index(usize),
}

fn remove_steps(v: &mut Value, steps: &[Step]) {
    match steps {
        [] => {}
        [Step::Key(k)] => {
            if let Value::Object(m) = v {
                m.shift_remove(k);
            }
        }
        [Step::Key(k), rest @ ..] => {
            if let Some(c) = v.get_mut(k.as_str()) {
                remove_steps(c, rest);
            }
        }
        [Step::Index(i), rest @ ..] => {
            if let Some(c) = v.get_mut(*i) {
                remove_steps(c, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_wrong_type_is_named_by_its_path() {
        let mut f = Findings::default();
        let o = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": "eighty"}]}});
        typed::<Service>(&o, &mut f);
        assert_eq!(f.causes.len(), 1);
        assert_eq!(f.causes[0].field, "spec.ports[0].port");
        assert!(f.causes[0].message.contains("\"eighty\""), "{:?}", f.causes);
    }

    #[test]
    fn unknown_fields_are_listed_and_pruned() {
        let mut f = Findings::default();
        let mut o = json!({"metadata": {"name": "web"}, "spec": {"portz": 1, "ports": [{"port": 80, "colour": "red"}]}});
        typed::<Service>(&o, &mut f);
        assert!(f.causes.is_empty());
        assert_eq!(f.unknown, ["spec.portz", "spec.ports[0].colour"]);
        prune(&mut o, &f.unknown);
        assert_eq!(o["spec"], json!({"ports": [{"port": 80}]}));
    }
}
