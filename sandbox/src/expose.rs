//! The exports a warm instance needs, added to a module before wasmtime compiles it.
//!
//! A warm instance (`warm`) restores every mutable global after each call, but wasmtime only
//! reaches exported globals (without its guest-debug instrumentation). So [`expose`] rewrites
//! the export section of validated bytes, and nothing else: every mutable global is exported
//! as `kasane:warm:g<index>`, and a marker `kasane:warm:globals=<n>` (the memory again) says
//! that all `n` of them are. Exports change no code, no fuel and no result: a module cannot
//! see its own exports. Guest exports that already use the prefix are dropped first, so every
//! name under it in a compiled module is the sandbox's, and [`plan`] can trust the marker.
//!
//! A module that changes state a warm instance cannot restore gets no marker, so it is never
//! reused: a mutable global of reference type, or any `table.set`, `table.grow`,
//! `table.fill`, `table.copy`, `table.init`, `elem.drop` or `data.drop` in its code.

use crate::SandboxError;
use wasmparser::{
    BinaryReader, CodeSectionReader, ExportSectionReader, ExternalKind, GlobalSectionReader,
    ImportSectionReader, Operator, TypeRef,
};
use wasmtime::{ExternType, Module, Mutability};

/// Prefix of every export [`expose`] adds. Part of the compile cache's key (with
/// [`VERSION`]): a cached module was compiled from exposed bytes.
pub(crate) const PREFIX: &str = "kasane:warm:";

/// Version of the rewrite; part of the compile cache's key.
pub(crate) const VERSION: u32 = 1;

/// wasmparser's (and so wasmtime's) limit on exports: a module the rewrite would push past it
/// is compiled without the warm exports (never reused), not refused.
const MAX_EXPORTS: usize = 1_000_000;

const SECTION_IMPORT: u8 = 2;
const SECTION_GLOBAL: u8 = 6;
const SECTION_EXPORT: u8 = 7;
const SECTION_CODE: u8 = 10;

/// What the analysis found.
#[derive(Default)]
struct Scan {
    /// Indices of the mutable globals.
    mutable: Vec<u32>,
    /// False once something a warm instance cannot restore was seen.
    restorable: bool,
    /// Index of the memory exported as `memory`.
    memory: Option<u32>,
    /// Header start, body start and end of the export section.
    exports: Option<(usize, usize, usize)>,
}

/// The bytes to compile: `wasm` (already validated) with its export section rewritten.
pub(crate) fn expose(wasm: &[u8]) -> Result<Vec<u8>, SandboxError> {
    let bad = |e: wasmparser::BinaryReaderError| {
        SandboxError::Engine(format!("warm exports: validated bytes do not parse: {e}"))
    };
    let scan = scan(wasm).map_err(bad)?;
    let Some((header, start, end)) = scan.exports else {
        return Err(SandboxError::Engine(
            "warm exports: no export section".into(),
        ));
    };
    let mut entries = Vec::new();
    let mut count = 0u32;
    let reader = ExportSectionReader::new(BinaryReader::new(&wasm[start..end], start));
    for export in reader.map_err(bad)?.into_iter_with_offsets() {
        let (offset, export) = export.map_err(bad)?;
        if !export.name.starts_with(PREFIX) {
            count += 1;
            entries.extend_from_slice(&wasm[offset..entry_end(wasm, offset, end).map_err(bad)?]);
        }
    }
    let added = scan.mutable.len() + 1;
    let fits = (count as usize).saturating_add(added) <= MAX_EXPORTS;
    if let (true, true, Some(memory)) = (scan.restorable, fits, scan.memory) {
        for &index in &scan.mutable {
            push_export(&mut entries, &format!("{PREFIX}g{index}"), 3, index);
        }
        let marker = format!("{PREFIX}globals={}", scan.mutable.len());
        push_export(&mut entries, &marker, 2, memory);
        count += u32::try_from(added).unwrap_or(u32::MAX);
    }
    let mut body = Vec::with_capacity(entries.len() + 5);
    leb(&mut body, count);
    body.extend_from_slice(&entries);
    let mut out = Vec::with_capacity(wasm.len() + body.len());
    out.extend_from_slice(&wasm[..header]);
    out.push(SECTION_EXPORT);
    leb(&mut out, u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(&body);
    out.extend_from_slice(&wasm[end..]);
    Ok(out)
}

/// Where the export entry starting at `offset` ends (the next entry's offset, or `end`).
fn entry_end(wasm: &[u8], offset: usize, end: usize) -> wasmparser::Result<usize> {
    let mut r = BinaryReader::new(&wasm[offset..end], offset);
    r.read_string()?;
    r.read_u8()?;
    r.read_var_u32()?;
    Ok(r.original_position())
}

/// Walks the sections of validated bytes.
fn scan(wasm: &[u8]) -> wasmparser::Result<Scan> {
    let mut scan = Scan {
        restorable: true,
        ..Scan::default()
    };
    let mut r = BinaryReader::new(wasm, 0);
    r.read_bytes(8)?;
    let mut globals = 0u32;
    while !r.eof() {
        let header = r.original_position();
        let id = r.read_u8()?;
        let len = r.read_var_u32()? as usize;
        let start = r.original_position();
        let body = r.read_bytes(len)?;
        let section = BinaryReader::new(body, start);
        match id {
            SECTION_IMPORT => {
                for import in ImportSectionReader::new(section)?.into_imports() {
                    if let TypeRef::Global(_) = import?.ty {
                        // Validation admits no imported global; never reuse one that would.
                        scan.restorable = false;
                        globals += 1;
                    }
                }
            }
            SECTION_GLOBAL => {
                for global in GlobalSectionReader::new(section)? {
                    let ty = global?.ty;
                    if ty.mutable {
                        scan.mutable.push(globals);
                        scan.restorable &= !matches!(ty.content_type, wasmparser::ValType::Ref(_));
                    }
                    globals += 1;
                }
            }
            SECTION_EXPORT => {
                scan.exports = Some((header, start, start + len));
                for export in ExportSectionReader::new(section)? {
                    let export = export?;
                    if export.name == kasane_abi::EXPORT_MEMORY
                        && export.kind == ExternalKind::Memory
                    {
                        scan.memory = Some(export.index);
                    }
                }
            }
            SECTION_CODE if scan.restorable => scan.restorable = code_is_restorable(section)?,
            _ => {}
        }
    }
    Ok(scan)
}

/// False when a function body changes a table or drops a segment.
fn code_is_restorable(section: BinaryReader<'_>) -> wasmparser::Result<bool> {
    for body in CodeSectionReader::new(section)? {
        let mut ops = body?.get_operators_reader()?;
        while !ops.eof() {
            if matches!(
                ops.read()?,
                Operator::TableSet { .. }
                    | Operator::TableGrow { .. }
                    | Operator::TableFill { .. }
                    | Operator::TableCopy { .. }
                    | Operator::TableInit { .. }
                    | Operator::ElemDrop { .. }
                    | Operator::DataDrop { .. }
            ) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn push_export(out: &mut Vec<u8>, name: &str, kind: u8, index: u32) {
    leb(out, u32::try_from(name.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(name.as_bytes());
    out.push(kind);
    leb(out, index);
}

/// Unsigned LEB128.
fn leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The names of the exported mutable globals of a module compiled from [`expose`]d bytes,
/// when its marker says they are all of them; `None` when a warm instance of it could not be
/// restored exactly (no marker, or a count that does not match).
pub(crate) fn plan(module: &Module) -> Option<Vec<String>> {
    let mut declared = None;
    let mut names = Vec::new();
    for export in module.exports() {
        let Some(rest) = export.name().strip_prefix(PREFIX) else {
            continue;
        };
        if let Some(n) = rest.strip_prefix("globals=") {
            declared = n.parse::<usize>().ok();
        } else if matches!(export.ty(), ExternType::Global(g) if g.mutability() == Mutability::Var)
        {
            names.push(export.name().to_owned());
        }
    }
    (declared == Some(names.len())).then_some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wat(src: &str) -> Vec<u8> {
        wat::parse_str(src).unwrap_or_else(|e| panic!("{e}"))
    }

    fn exports(wasm: &[u8]) -> Vec<String> {
        let reader = wasmparser::Parser::new(0).parse_all(wasm);
        let mut names = Vec::new();
        for payload in reader {
            if let Ok(wasmparser::Payload::ExportSection(s)) = payload {
                names.extend(
                    s.into_iter()
                        .map(|e| e.map(|e| e.name.to_owned()).unwrap_or_default()),
                );
            }
        }
        names
    }

    #[test]
    fn exposes_every_mutable_global_and_drops_guest_names_under_the_prefix() {
        let wasm = wat(r#"(module
            (memory (export "memory") 1)
            (global $a (mut i32) (i32.const 1))
            (global $b i32 (i32.const 2))
            (global $c (mut i64) (i64.const 3))
            (func (export "kasane:warm:globals=0"))
            (func (export "f")))"#);
        let out = expose(&wasm).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            exports(&out),
            [
                "memory",
                "f",
                "kasane:warm:g0",
                "kasane:warm:g2",
                "kasane:warm:globals=2"
            ]
        );
        assert!(wasmparser::Validator::new().validate_all(&out).is_ok());
    }

    #[test]
    fn a_module_that_changes_a_table_gets_no_marker() {
        let wasm = wat(r#"(module
            (memory (export "memory") 1)
            (table $t 1 funcref)
            (func (export "f") (table.set $t (i32.const 0) (ref.null func))))"#);
        let out = expose(&wasm).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(exports(&out), ["memory", "f"]);
    }
}
