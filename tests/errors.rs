//! Every fallible op reports what went wrong and where; nothing panics.

use deltagrad::{Device, Error, Result, Tensor};

fn t(shape: &[usize]) -> Tensor {
    Tensor::from_vec(vec![0.5f32; shape.iter().product()], shape).unwrap()
}

fn msg(r: Result<Tensor>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn shape_errors_name_the_op_and_both_shapes() {
    let m = msg(t(&[2, 3]).add(&t(&[4, 3])));
    assert!(
        m.contains("add") && m.contains("[2, 3]") && m.contains("[4, 3]"),
        "{m}"
    );
    let m = msg(t(&[2, 3]).matmul(&t(&[2, 3])));
    assert!(m.contains("matmul") && m.contains("[2, 3]"), "{m}");
    let m = msg(t(&[2, 3]).matmul(&t(&[3])));
    assert!(m.contains("matmul"), "{m}");
    let m = msg(t(&[2, 3]).reshape(&[4, 2]));
    assert!(m.contains("reshape") && m.contains("[4, 2]"), "{m}");
    let m = msg(t(&[2, 3]).sum_axis(2));
    assert!(m.contains("sum") && m.contains("axis 2"), "{m}");
    let m = msg(t(&[2, 3]).permute(&[0, 0]));
    assert!(m.contains("permute"), "{m}");
    let m = msg(t(&[2, 3]).expand(&[2, 4]));
    assert!(m.contains("expand"), "{m}");
    let m = msg(t(&[2, 3, 4]).transpose());
    assert!(m.contains("transpose"), "{m}");
    let m = msg(t(&[3]).logistic_loss(&t(&[4])));
    assert!(
        m.contains("logistic_loss") && m.contains("[3]") && m.contains("[4]"),
        "{m}"
    );
    let labels = Tensor::ids(vec![0, 1], &[2], &Device::cpu()).unwrap();
    let m = msg(t(&[3, 4]).softmax_cross_entropy(&labels));
    assert!(
        m.contains("softmax_cross_entropy") && m.contains("[3, 4]"),
        "{m}"
    );
    assert!(Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).is_err());
}

#[test]
fn dtype_mismatch_is_an_error() {
    let a = t(&[2]);
    let b = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    let m = msg(a.add(&b));
    assert!(
        m.contains("add") && m.contains("f32") && m.contains("f64"),
        "{m}"
    );
}

#[test]
fn out_of_range_ids_are_errors_not_panics() {
    let table = t(&[4, 3]);
    let ids = Tensor::ids(vec![0, 3, 4, 1], &[4], &Device::cpu()).unwrap();
    match table.gather_rows(&ids) {
        Err(Error::IdOutOfRange {
            id, position, rows, ..
        }) => {
            assert_eq!((id, position, rows), (4, 2, 4));
        }
        other => panic!("expected IdOutOfRange, got {other:?}"),
    }
    let labels = Tensor::ids(vec![0, 5], &[2], &Device::cpu()).unwrap();
    let m = msg(t(&[2, 5]).softmax_cross_entropy(&labels));
    assert!(m.contains("id 5") && m.contains("5 rows"), "{m}");
    let rows = t(&[2, 3]);
    let ids = Tensor::ids(vec![0, 9], &[2], &Device::cpu()).unwrap();
    assert!(rows.scatter_add_rows(&ids, 4).is_err());
}

#[test]
fn backward_on_a_non_scalar_is_an_error() {
    let x = t(&[2, 2]).requires_grad();
    let y = x.tanh().unwrap();
    let e = y.backward().unwrap_err().to_string();
    assert!(e.contains("backward") && e.contains("[2, 2]"), "{e}");
}

#[test]
fn item_on_many_elements_is_an_error() {
    let e = t(&[3]).item().unwrap_err().to_string();
    assert!(e.contains("item"), "{e}");
}

#[test]
fn bad_device_name_is_an_error() {
    let e = Device::parse("tpu").unwrap_err().to_string();
    assert!(e.contains("tpu"), "{e}");
}

/// The new ops' shape, dtype and range errors name the op and the shapes.
#[test]
fn new_op_errors_name_the_op_and_the_shapes() {
    use deltagrad::functional::jacobian;
    use deltagrad::nn::{cross_entropy, dropout, layer_norm};
    let has = |m: &str, parts: &[&str]| {
        assert!(parts.iter().all(|p| m.contains(p)), "{m} lacks {parts:?}");
    };
    let x = t(&[2, 3]);
    has(&msg(x.narrow(1, 2, 2)), &["narrow", "[2, 3]", "axis 1"]);
    has(&msg(x.narrow(2, 0, 1)), &["narrow", "[2, 3]", "axis 2"]);
    has(&msg(x.slice(1, 2, 1)), &["slice", "[2, 3]"]);
    has(&msg(x.select(0, 2)), &["select", "[2, 3]", "index 2"]);
    has(&msg(x.pad_axis(3, 1, 1)), &["pad", "[2, 3]", "axis 3"]);
    has(&msg(x.squeeze(0)), &["squeeze", "[2, 3]"]);
    has(&msg(x.unsqueeze(3)), &["unsqueeze", "[2, 3]"]);
    has(
        &msg(Tensor::concat(&[&x, &t(&[3, 3])], 1)),
        &["concat", "[2, 3]", "[3, 3]"],
    );
    has(&msg(Tensor::concat(&[], 0)), &["concat"]);
    has(
        &msg(Tensor::stack(&[&x, &t(&[3, 2])], 0)),
        &["stack", "[2, 3]", "[3, 2]"],
    );
    let f64x = Tensor::from_vec(vec![1.0f64; 6], &[2, 3]).unwrap();
    has(
        &msg(Tensor::concat(&[&x, &f64x], 0)),
        &["concat", "f32", "f64"],
    );
    has(&msg(x.pow(&f64x)), &["pow", "f32", "f64"]);
    has(&msg(x.minimum(&t(&[4]))), &["minimum", "[2, 3]", "[4]"]);
    has(&msg(x.clamp(1.0, 0.0)), &["clamp", "[2, 3]"]);
    has(&msg(x.min_axis(2)), &["min", "axis 2"]);
    has(&msg(x.logsumexp(5)), &["logsumexp", "[2, 3]"]);
    has(&msg(x.log_softmax_axis(2)), &["log_softmax", "[2, 3]"]);
    has(&msg(t(&[2, 0]).argmax(1)), &["argmax", "[2, 0]"]);
    has(&msg(x.argmin(2)), &["argmin", "[2, 3]"]);
    let ids = Tensor::ids(vec![0, 1], &[2], &Device::cpu()).unwrap();
    has(&msg(ids.narrow(0, 0, 1)), &["narrow", "u32"]);
    has(&msg(ids.argmax(0)), &["argmax", "u32"]);
    has(
        &msg(layer_norm(&x, Some(&t(&[2])), None, 1e-5)),
        &["layer_norm", "[2, 3]", "[2]"],
    );
    has(
        &msg(dropout(&x, 1.5, &mut Tensor::rng(0), true)),
        &["dropout", "1.5", "[2, 3]"],
    );
    has(
        &msg(cross_entropy(&x, &ids, Some(&t(&[2])), 0.0)),
        &["cross_entropy", "[2, 3]", "[2]"],
    );
    has(
        &msg(cross_entropy(&x, &ids, None, 2.0)),
        &["cross_entropy", "label_smoothing"],
    );
    let bad = Tensor::ids(vec![0, 3], &[2], &Device::cpu()).unwrap();
    has(
        &msg(cross_entropy(&x, &bad, None, 0.0)),
        &["cross_entropy", "id 3", "3 rows"],
    );
    has(
        &msg(cross_entropy(&x, &t(&[2]), None, 0.0)),
        &["cross_entropy", "u32"],
    );
    has(&msg(jacobian(|x| x.exp(), &ids)), &["jacobian", "u32"]);
}

#[test]
fn parse_errors_name_the_line_only_when_there_is_one() {
    let e = deltagrad::Error::Parse {
        file: "a.txt".into(),
        line: 3,
        msg: "bad".into(),
    };
    assert_eq!(e.to_string(), "a.txt:3: bad");
    let e = deltagrad::Error::Parse {
        file: "w.safetensors".into(),
        line: 0,
        msg: "truncated".into(),
    };
    assert_eq!(e.to_string(), "w.safetensors: truncated");
}
