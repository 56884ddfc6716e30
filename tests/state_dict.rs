//! safetensors files: every dtype round-trips bit for bit, files of other
//! writers load, and a malformed, truncated or foreign file, or a tensor of
//! the wrong shape or dtype, is an error naming the file and the tensor.
//! Saving is atomic: a failed save leaves the earlier file as it was.

mod common;

use std::path::{Path, PathBuf};

use deltagrad::state_dict::{StateDict, load_safetensors, save_safetensors};
use deltagrad::{DType, Device, Error, HostData, Tensor};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// A fresh scratch folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d =
            std::env::temp_dir().join(format!("deltagrad-state-dict-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_mentions(err: &Error, needles: &[&str]) {
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "{n:?} missing from: {msg}");
    }
}

/// Values that must survive bit for bit: signed zero, subnormals,
/// infinities, NaN with a payload, extremes.
fn tricky_f32() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        1.5,
        -2.25e-3,
        f32::MIN_POSITIVE / 4.0,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234),
        f32::EPSILON,
        -7.0,
        1e30,
    ]
}

fn bits(h: &HostData) -> Vec<u64> {
    match h {
        HostData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        HostData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        HostData::U32(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

fn examples(device: &Device) -> Vec<(&'static str, Tensor)> {
    let f64s: Vec<f64> = tricky_f32()
        .iter()
        .map(|&x| x as f64 * 1.000_000_1)
        .collect();
    let host = |h: HostData, shape: &[usize]| Tensor::from_host(h, shape, device).unwrap();
    let mut out = vec![
        ("weights.f32", host(HostData::F32(tricky_f32()), &[3, 4])),
        ("ids", host(HostData::U32(vec![0, 1, 7, u32::MAX]), &[4])),
        ("scalar", host(HostData::F32(vec![42.0]), &[])),
        ("empty", host(HostData::F32(vec![]), &[0, 3])),
    ];
    // The wgpu backend has no f64.
    if !device.is_gpu() {
        out.push(("weights.f64", host(HostData::F64(f64s), &[2, 3, 2])));
        out.push(("empty.f64", host(HostData::F64(vec![]), &[3, 0])));
    }
    out
}

fn round_trip_on(device: &Device) {
    let dir = Scratch::new(&format!("round-trip-{}", device.is_gpu()));
    let path = dir.path("all.safetensors");
    let tensors = examples(device);
    let pairs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    save_safetensors(&path, &pairs).unwrap();
    assert_eq!(dir.files(), ["all.safetensors"], "no temporary file left");

    let loaded = load_safetensors(&path, device).unwrap();
    let mut expected: Vec<_> = tensors.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    let names: Vec<_> = loaded.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, expected, "name order");
    for (name, t) in &loaded {
        let (_, orig) = tensors.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(t.shape(), orig.shape(), "{name}");
        assert_eq!(t.dtype(), orig.dtype(), "{name}");
        assert_eq!(t.device(), *device, "{name}");
        let (a, b) = (t.to_host().unwrap(), orig.to_host().unwrap());
        assert_eq!(bits(&a), bits(&b), "{name}");
    }
}

#[test]
fn every_dtype_round_trips_bit_for_bit() {
    round_trip_on(&Device::cpu());
}

#[test]
fn round_trip_on_the_gpu() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    round_trip_on(&gpu);
    // An f64 file cannot go to the GPU: the error names the tensor.
    let dir = Scratch::new("gpu-f64");
    let path = dir.path("f64.safetensors");
    let t = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    save_safetensors(&path, &[("double", &t)]).unwrap();
    let e = load_safetensors(&path, &gpu).unwrap_err();
    assert_mentions(&e, &[&path.display().to_string(), "tensor double", "f64"]);
}

#[test]
fn dict_keeps_metadata_and_checks_on_take() {
    let dir = Scratch::new("dict");
    let path = dir.path("d.safetensors");
    let mut d = StateDict::new();
    d.insert(
        "w",
        Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap(),
    );
    d.insert("b", Tensor::from_vec(vec![0.5f64, 0.25], &[2]).unwrap());
    d.set_metadata("format", "test/1");
    assert_eq!((d.len(), d.numel()), (2, 8));
    d.save(&path).unwrap();

    let mut back = StateDict::load(&path, &Device::cpu()).unwrap();
    assert_eq!(
        back.metadata().get("format").map(String::as_str),
        Some("test/1")
    );
    assert_eq!(back.names().collect::<Vec<_>>(), ["b", "w"]);
    assert_eq!(back.source(), Some(path.display().to_string().as_str()));
    let file = path.display().to_string();

    let e = back.take("w", &[3, 2], DType::F32).unwrap_err();
    assert_mentions(&e, &[&file, "tensor w has shape [2, 3], expected [3, 2]"]);
    let e = back.take("w", &[2, 3], DType::F64).unwrap_err();
    assert_mentions(&e, &[&file, "tensor w is f32, expected f64"]);
    let e = back.take("u", &[2], DType::F32).unwrap_err();
    assert_mentions(&e, &[&file, "tensor u is missing"]);
    // A failed take leaves the tensor in place.
    let w = back.take("w", &[2, 3], DType::F32).unwrap();
    assert_eq!(w.to_vec_f32().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(!back.contains("w") && back.contains("b"));
}

/// Bytes as another writer (PyTorch's `save_file`) would produce them.
fn foreign(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn files_of_other_writers_load() {
    let dir = Scratch::new("foreign");
    let path = dir.path("torch.safetensors");
    let w: Vec<u8> = [1.0f32, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let ids: Vec<u8> = [3u32, 9, 27].iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(
        &path,
        foreign(&[
            ("w", Dtype::F32, vec![1, 2], w),
            ("ids", Dtype::U32, vec![3], ids),
        ]),
    )
    .unwrap();
    let mut d = StateDict::load(&path, &Device::cpu()).unwrap();
    assert_eq!(
        d.take("w", &[1, 2], DType::F32)
            .unwrap()
            .to_vec_f32()
            .unwrap(),
        [1.0, -2.0]
    );
    assert_eq!(
        d.take("ids", &[3], DType::U32).unwrap().to_ids().unwrap(),
        [3, 9, 27]
    );

    // And what deltagrad writes, the reference reader reads.
    let ours = dir.path("ours.safetensors");
    let t = Tensor::from_vec(vec![0.5f64, 1.5, 2.5], &[3]).unwrap();
    save_safetensors(&ours, &[("t", &t)]).unwrap();
    let bytes = std::fs::read(&ours).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let v = st.tensor("t").unwrap();
    assert_eq!((v.dtype(), v.shape()), (Dtype::F64, &[3usize][..]));
    assert_eq!(
        v.data(),
        &t.to_vec_f64()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>()[..]
    );
}

/// Writes `bytes` and returns the error loading them gives, and the path.
fn load_err(dir: &Scratch, bytes: &[u8]) -> (Error, String) {
    let path = dir.path("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let e = StateDict::load(&path, &Device::cpu()).expect_err("a bad file loaded");
    (e, path.display().to_string())
}

fn saved_bytes(dir: &Scratch) -> Vec<u8> {
    let path = dir.path("good.safetensors");
    let a = Tensor::from_vec(vec![1.0f32; 6], &[2, 3]).unwrap();
    let b = Tensor::from_vec(vec![2.0f32; 5], &[5]).unwrap();
    save_safetensors(&path, &[("a", &a), ("b", &b)]).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn truncated_files_name_the_cut_tensor() {
    let dir = Scratch::new("truncated");
    let bytes = saved_bytes(&dir);
    // The data section holds a then b (same dtype: name order): cutting 7
    // bytes cuts into b.
    let (e, file) = load_err(&dir, &bytes[..bytes.len() - 7]);
    assert_mentions(&e, &[&file, "tensor b", "runs past the end", "truncated"]);
    // Into the header.
    let (e, file) = load_err(&dir, &bytes[..20]);
    assert_mentions(
        &e,
        &[
            &file,
            "not a safetensors file",
            "header length",
            "truncated",
        ],
    );
    // Shorter than the header length itself.
    let (e, file) = load_err(&dir, &bytes[..5]);
    assert_mentions(&e, &[&file, "not a safetensors file", "5 bytes"]);
    let (e, file) = load_err(&dir, b"");
    assert_mentions(&e, &[&file, "not a safetensors file", "0 bytes"]);
    // Bytes appended after the last tensor are damage too.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 3]);
    let (e, file) = load_err(&dir, &longer);
    assert_mentions(&e, &[&file, "3 bytes follow the last tensor"]);
}

/// A file with `header` as its JSON header and `data_len` zero bytes after.
fn with_header(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(0u8, data_len));
    b
}

#[test]
fn malformed_files_are_errors() {
    let dir = Scratch::new("malformed");
    let (e, file) = load_err(&dir, b"PK\x03\x04 this is a zip file, not safetensors");
    assert_mentions(&e, &[&file, "not a safetensors file"]);

    let mut bytes = saved_bytes(&dir);
    bytes[9] = b'!'; // inside the JSON header
    let (e, file) = load_err(&dir, &bytes);
    assert_mentions(&e, &[&file, "not a safetensors file", "JSON"]);

    // Shape and offsets disagree: named.
    let h = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    let (e, file) = load_err(&dir, &with_header(h, 8));
    assert_mentions(&e, &[&file, "tensor w: shape [3] of F32 takes 12 bytes"]);
    // Overlapping tensors: named.
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let (e, file) = load_err(&dir, &with_header(h, 8));
    assert_mentions(&e, &[&file, "tensor b: data offsets 4..8 overlap"]);
    // An entry that is not a tensor description.
    let h = r#"{"w":{"dtype":"F32","shape":"three","data_offsets":[0,12]}}"#;
    let (e, file) = load_err(&dir, &with_header(h, 12));
    assert_mentions(&e, &[&file, "tensor w: bad header entry"]);
}

#[test]
fn dtypes_deltagrad_lacks_are_named() {
    let dir = Scratch::new("dtype");
    let h: Vec<u8> = vec![0; 6];
    let w: Vec<u8> = [1.0f32].iter().flat_map(|x| x.to_le_bytes()).collect();
    let (e, file) = load_err(
        &dir,
        &foreign(&[
            ("half", Dtype::F16, vec![3], h),
            ("w", Dtype::F32, vec![1], w),
        ]),
    );
    assert_mentions(&e, &[&file, "tensor half is F16", "F32, F64 and U32"]);
}

#[test]
fn a_failed_save_keeps_the_earlier_file() {
    let dir = Scratch::new("atomic");
    let path = dir.path("m.safetensors");
    let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    save_safetensors(&path, &[("a", &a)]).unwrap();
    let before = std::fs::read(&path).unwrap();

    let e = save_safetensors(&path, &[("a", &a), ("a", &a)]).unwrap_err();
    assert_mentions(&e, &["\"a\" appears twice"]);
    let e = save_safetensors(&path, &[("__metadata__", &a)]).unwrap_err();
    assert_mentions(&e, &["reserved"]);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // The rename fails (a folder is in the way): no temporary file stays.
    let blocked = dir.path("blocked.safetensors");
    std::fs::create_dir_all(blocked.join("inside")).unwrap();
    let e = save_safetensors(&blocked, &[("a", &a)]).unwrap_err();
    assert_mentions(&e, &[&blocked.display().to_string()]);
    assert_eq!(dir.files(), ["blocked.safetensors", "m.safetensors"]);

    // Overwriting succeeds and replaces the file whole.
    let b = Tensor::from_vec(vec![9u32, 8, 7], &[3]).unwrap();
    save_safetensors(&path, &[("b", &b)]).unwrap();
    let loaded = load_safetensors(&path, &Device::cpu()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].1.to_ids().unwrap(), [9, 8, 7]);
    assert!(missing_parent_fails(&dir.0));
}

fn missing_parent_fails(dir: &Path) -> bool {
    let a = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
    save_safetensors(dir.join("no/such/folder/x.safetensors"), &[("a", &a)]).is_err()
}

#[test]
fn missing_file_names_the_path() {
    let dir = Scratch::new("missing");
    let path = dir.path("nothing.safetensors");
    let e = load_safetensors(&path, &Device::cpu()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_mentions(&e, &[&path.display().to_string()]);
}
