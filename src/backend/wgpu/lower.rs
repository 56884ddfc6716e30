//! Lowering of each `Kernel` to dispatch steps: the per-kernel size
//! checks, kernel id choice and uniform parameter packing.

use super::compile::{
    Bind, Buf, Compiler, Dispatch, HostPrep, Step, Views, invalid, u32_of, words,
};
use super::emit::Access;
use super::kernels::{KernelId, MAX_EPI_INPUTS, MAX_EW_INPUTS, MAX_RANK, SoftmaxKind};
use super::segments;
use super::variants::{MatmulShape, MatmulVariant};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ir::{Epilogue, Expr, Kernel};

/// Rows at most this wide are handled by one thread each; wider ones by a
/// workgroup each.
const SERIAL_COLS: usize = 32;

/// An epilogue's part of a kernel id.
type EpilogueId = Option<(Expr, Vec<Access>)>;

impl Compiler<'_> {
    /// The dispatch steps of launch `li`, one method per kernel kind.
    pub(super) fn launch(&mut self, li: usize, k: &Kernel) -> Result<()> {
        match k {
            Kernel::Elementwise { .. } => self.elementwise(k),
            Kernel::Matmul { .. } => self.matmul(k),
            Kernel::Reduce { .. } => self.reduce(k),
            Kernel::Pad { .. } => self.pad(k),
            Kernel::ArgMax { .. } => self.argmax(k),
            Kernel::Gather { .. } => self.gather(k),
            Kernel::ScatterAdd { .. } => self.scatter_add(k),
            Kernel::IndexAddInPlace { .. } => self.index_add(k),
            Kernel::SoftmaxXent { .. } => self.softmax_xent(k),
            Kernel::SoftmaxXentGrad { .. } => self.softmax_xent_grad(k),
            Kernel::SoftmaxXentWithGrad { .. } => self.softmax_xent_with_grad(k),
            Kernel::LogSoftmax { .. } => self.log_softmax(k),
            Kernel::LogisticLoss { .. } => self.logistic_loss(k),
            Kernel::LogisticLossGrad { .. } => self.logistic_grad(k),
            Kernel::Custom { .. } => self.custom(li, k),
        }
    }

    fn elementwise(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::Elementwise {
            shape,
            inputs,
            expr,
            out,
        } = k
        else {
            return Err(invalid("not an elementwise".into()));
        };
        if shape.len() > MAX_RANK || inputs.len() > MAX_EW_INPUTS {
            return Err(invalid(format!(
                "elementwise of rank {} with {} inputs; the wgpu backend takes rank <= {MAX_RANK}, <= {MAX_EW_INPUTS} inputs",
                shape.len(),
                inputs.len()
            )));
        }
        let n: usize = shape.iter().product();
        let ob = self.out(*out, n, "elementwise")?;
        let o = Bind::Buf(ob);
        let Views {
            access,
            binds: ins,
            strides,
            mut offsets,
        } = self.views(inputs, shape, ob)?;
        let mut p = vec![u32_of(n, "elements")?, shape.len() as u32, 0, 0];
        let mut dims: Vec<u32> = shape
            .iter()
            .map(|&d| u32_of(d, "dim"))
            .collect::<Result<_>>()?;
        dims.resize(MAX_RANK, 1);
        p.extend(dims);
        for mut s in strides {
            s.resize(MAX_RANK, 0);
            p.extend(s);
        }
        p.resize(4 + MAX_RANK + MAX_EW_INPUTS * MAX_RANK, 0);
        offsets.resize(MAX_EW_INPUTS, 0);
        p.extend(offsets);
        let mut binds = vec![o, Bind::Params];
        binds.extend(ins);
        let kernel = KernelId::Elementwise {
            expr: expr.clone(),
            access,
        };
        self.dispatch(kernel, binds, words(&p), (n as u64).div_ceil(64))
    }

    /// Epilogue views over `shape`: their bindings, the per-input words
    /// (row stride, column stride, offset, 0) and the kernel id's part.
    fn epilogue(
        &self,
        e: &Option<Epilogue>,
        shape: [usize; 2],
        out: Buf,
    ) -> Result<(Vec<Bind>, Vec<u32>, EpilogueId)> {
        let Some(e) = e else {
            return Ok((vec![], vec![0; 4 * MAX_EPI_INPUTS], None));
        };
        if e.inputs.len() > MAX_EPI_INPUTS {
            return Err(invalid(format!(
                "epilogue with {} inputs (max {MAX_EPI_INPUTS})",
                e.inputs.len()
            )));
        }
        let Views {
            access,
            binds,
            strides,
            offsets,
        } = self.views(&e.inputs, &shape, out)?;
        let mut p = Vec::with_capacity(4 * MAX_EPI_INPUTS);
        for (s, off) in strides.iter().zip(offsets) {
            p.extend([s[0], s[1], off, 0]);
        }
        p.resize(4 * MAX_EPI_INPUTS, 0);
        Ok((binds, p, Some((e.expr.clone(), access))))
    }

    /// One launch of the matmul template with the variant the tuner (or
    /// the heuristic, or a pin) chose for its shape class: one dispatch,
    /// or with split-K a layer of workgroups per range of K writing
    /// partial products and a second dispatch summing them in order into
    /// the epilogue.
    fn matmul(&mut self, k: &Kernel) -> Result<()> {
        let (
            Some(shape),
            Kernel::Matmul {
                a,
                b,
                epilogue,
                out,
                ..
            },
        ) = (MatmulShape::of(k), k)
        else {
            return Err(invalid("not a matmul".into()));
        };
        let MatmulShape {
            m,
            k: kk,
            n,
            trans_a,
            trans_b,
        } = shape;
        let ob = self.out(*out, m * n, "matmul")?;
        let ab = self.need(*a, m * kk, DType::F32, "matmul a")?;
        let bb = self.need(*b, kk * n, DType::F32, "matmul b")?;
        let (epi_binds, epi_words, epi) = self.epilogue(epilogue, [m, n], ob)?;
        let (v, chunk, splits, [gx, gy]) = self.matmul_variant(&shape)?;
        // Four values at once where the operand's contiguous axis allows.
        let vec_a = if trans_a { m } else { kk }.is_multiple_of(4);
        let vec_b = if trans_b { kk } else { n }.is_multiple_of(4);
        if m * n == 0 {
            return Ok(());
        }
        let (m32, k32, n32) = (u32_of(m, "m")?, u32_of(kk, "k")?, u32_of(n, "n")?);
        let dims =
            |w: usize| -> Result<Vec<u32>> { Ok(vec![m32, k32, n32, u32_of(w, "k chunk")?]) };
        let id = |partial: bool, epilogue| KernelId::Matmul {
            trans_a,
            trans_b,
            vec_a,
            vec_b,
            tile: v.tile(),
            partial,
            epilogue,
        };
        let mut out_binds = vec![Bind::Buf(ob), Bind::Params];
        let mut epi_params = Vec::new();
        if splits == 1 {
            out_binds.extend([ab, bb]);
            out_binds.extend(epi_binds);
            epi_params.extend(dims(chunk)?);
            epi_params.extend(&epi_words);
            self.push_dispatch(id(false, epi), out_binds, &epi_params, [gx, gy, 1]);
            return Ok(());
        }
        // Split-K: each of `splits` ranges of K writes its partial products
        // to scratch; a second pass sums them in range order, then applies
        // the epilogue.
        let parts = u32_of(splits * m * n, "split-K partial products")? as usize;
        let scratch = Bind::Buf(Buf::Scratch(self.new_scratch(4 * parts)));
        let mut p = dims(chunk)?;
        p.resize(4 + 4 * MAX_EPI_INPUTS, 0);
        let binds = vec![scratch, Bind::Params, ab, bb];
        self.push_dispatch(id(true, None), binds, &p, [gx, gy, splits as u64]);
        out_binds.extend([scratch, scratch]);
        out_binds.extend(epi_binds);
        epi_params.extend(dims(splits)?);
        epi_params.extend(&epi_words);
        let groups = ((m * n) as u64).div_ceil(64);
        self.dispatch(
            KernelId::SplitSum { epilogue: epi },
            out_binds,
            words(&epi_params),
            groups,
        )
    }

    /// The variant chosen for `s`, its K chunk and number of K ranges, and
    /// its grid, checked against the adapter's limit; notes the choice for
    /// `explain`.
    fn matmul_variant(
        &mut self,
        s: &MatmulShape,
    ) -> Result<(MatmulVariant, usize, usize, [u64; 2])> {
        let choice = (self.env.choose)(s);
        let v = choice.variant;
        let (chunk, splits) = v.k_chunks(s.k);
        self.note = format!("{} ({})", v.with_split(splits as u32), choice.how);
        let (gx, gy) = v.groups(s.m, s.n);
        let max = self.max_groups as u64;
        if gx > max || gy > max || splits as u64 > max {
            return Err(Error::Gpu(format!(
                "matmul {}x{} needs a {gx}x{gy}x{splits} grid with variant {v}, over the adapter's limit",
                s.m, s.n
            )));
        }
        Ok((v, chunk, splits, [gx, gy]))
    }

    /// A dispatch over an explicit grid (sizes checked by the caller).
    fn push_dispatch(
        &mut self,
        kernel: KernelId,
        binds: Vec<Bind>,
        params: &[u32],
        groups: [u64; 3],
    ) {
        self.steps.push(Step::Dispatch(Box::new(Dispatch {
            kernel,
            binds,
            params: words(params),
            groups: groups.map(|g| g as u32),
        })));
    }

    fn reduce(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::Reduce {
            op,
            input,
            outer,
            len,
            inner,
            epilogue,
            out,
        } = k
        else {
            return Err(invalid("not a reduce".into()));
        };
        let count = outer * inner;
        let ob = self.out(*out, count, "reduce")?;
        let i = self.need(*input, outer * len * inner, DType::F32, "reduce input")?;
        let (epi_binds, epi_words, epi) = self.epilogue(epilogue, [*outer, *inner], ob)?;
        let tree = *len >= 256 || (*len >= 32 && count < 1024);
        let subgroups = tree && self.env.subgroups;
        self.note = match (tree, subgroups) {
            (false, _) => "a thread per output".into(),
            (true, false) => "a workgroup per output, tree".into(),
            (true, true) => "a workgroup per output, subgroups".into(),
        };
        let mut p = vec![
            u32_of(*outer, "outer")?,
            u32_of(*len, "len")?,
            u32_of(*inner, "inner")?,
            u32_of(count, "outputs")?,
        ];
        p.extend(epi_words);
        let groups = if tree {
            count as u64
        } else {
            (count as u64).div_ceil(64)
        };
        let mut binds = vec![Bind::Buf(ob), Bind::Params, i];
        binds.extend(epi_binds);
        self.dispatch(
            KernelId::Reduce {
                op: *op,
                tree,
                subgroups,
                epilogue: epi,
            },
            binds,
            words(&p),
            groups,
        )
    }

    /// The mean of `rows` values of a scratch buffer into `out`.
    fn mean_all(&mut self, out: Bind, rows: Bind, n: usize) -> Result<()> {
        let mut p = vec![0, u32_of(n, "rows")?, 0, u32_of(n, "rows")?];
        p.resize(4 + 4 * MAX_EPI_INPUTS, 0);
        let subgroups = self.env.subgroups;
        self.dispatch(
            KernelId::MeanAll { subgroups },
            vec![out, Bind::Params, rows],
            words(&p),
            1,
        )
    }

    /// A softmax kernel: a thread per row for narrow rows, else a
    /// workgroup per row.
    fn softmax_kernel(&mut self, kind: SoftmaxKind, rows: usize, cols: usize) -> (KernelId, u64) {
        let serial = cols <= SERIAL_COLS;
        let subgroups = !serial && self.env.subgroups;
        let how = match (serial, subgroups) {
            (true, _) => "a thread per row",
            (false, false) => "a workgroup per row, tree",
            (false, true) => "a workgroup per row, subgroups",
        };
        self.note = how.into();
        let groups = match (cols, serial) {
            (0, _) => 0,
            (_, true) => (rows as u64).div_ceil(64),
            (_, false) => rows as u64,
        };
        (
            KernelId::Softmax {
                kind,
                serial,
                subgroups,
            },
            groups,
        )
    }

    fn pad(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::Pad {
            input,
            outer,
            len,
            inner,
            before,
            total,
            out,
        } = k
        else {
            return Err(invalid("not a pad".into()));
        };
        if before + len > *total {
            return Err(invalid(format!(
                "pad of {len} at {before} in an axis of {total}"
            )));
        }
        let count = outer * total * inner;
        let o = Bind::Buf(self.out(*out, count, "pad")?);
        let i = self.need(*input, outer * len * inner, DType::F32, "pad input")?;
        let p = words(&[
            u32_of(*outer, "outer")?,
            u32_of(*len, "len")?,
            u32_of(*inner, "inner")?,
            u32_of(*before, "before")?,
            u32_of(*total, "total")?,
            u32_of(count, "outputs")?,
            0,
            0,
        ]);
        self.dispatch(
            KernelId::Pad,
            vec![o, Bind::Params, i],
            p,
            (count as u64).div_ceil(64),
        )
    }

    fn argmax(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::ArgMax {
            input,
            outer,
            len,
            inner,
            min,
            out,
        } = k
        else {
            return Err(invalid("not an argmax".into()));
        };
        let count = outer * inner;
        if *len == 0 {
            return Err(invalid("argmax over an empty axis".into()));
        }
        let o = self.need(*out, count, DType::U32, "argmax output")?;
        let i = self.need(*input, outer * len * inner, DType::F32, "argmax input")?;
        let p = words(&[
            u32_of(*outer, "outer")?,
            u32_of(*len, "len")?,
            u32_of(*inner, "inner")?,
            u32_of(count, "outputs")?,
        ]);
        self.dispatch(
            KernelId::ArgMax { min: *min },
            vec![o, Bind::Params, i],
            p,
            (count as u64).div_ceil(64),
        )
    }

    fn gather(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::Gather {
            table,
            ids,
            rows,
            dim,
            n,
            out,
        } = k
        else {
            return Err(invalid("not a gather".into()));
        };
        let o = Bind::Buf(self.out(*out, n * dim, "gather")?);
        let t = self.need(*table, rows * dim, DType::F32, "gather table")?;
        let (ib, input) = self.ids(*ids, *n, "gather ids")?;
        self.steps.push(Step::Host(HostPrep::CheckIds {
            input,
            n: *n,
            bound: *rows,
        }));
        let p = words(&[
            u32_of(*n, "n")?,
            u32_of(*dim, "dim")?,
            u32_of(*rows, "rows")?,
            0,
        ]);
        self.dispatch(
            KernelId::Gather,
            vec![o, Bind::Params, t, ib],
            p,
            ((n * dim) as u64).div_ceil(64),
        )
    }

    fn scatter_add(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::ScatterAdd {
            src,
            ids,
            rows,
            dim,
            n,
            out,
        } = k
        else {
            return Err(invalid("not a scatter_add".into()));
        };
        let o = Bind::Buf(self.out(*out, rows * dim, "scatter_add")?);
        let s = self.need(*src, n * dim, DType::F32, "scatter_add src")?;
        let (_, input) = self.ids(*ids, *n, "scatter_add ids")?;
        let aux = self.new_scratch(4 * (n + rows + 1));
        self.steps.push(Step::Host(HostPrep::Csr {
            input,
            n: *n,
            rows: *rows,
            aux,
        }));
        let p = words(&[
            u32_of(*rows, "rows")?,
            u32_of(*dim, "dim")?,
            u32_of(*n, "n")?,
            0,
        ]);
        let binds = vec![o, Bind::Params, s, Bind::Buf(Buf::Scratch(aux))];
        self.dispatch(
            KernelId::ScatterAdd,
            binds,
            p,
            ((rows * dim) as u64).div_ceil(64),
        )
    }

    fn index_add(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::IndexAddInPlace {
            src,
            ids,
            scale,
            factor,
            rows,
            dim,
            n,
            out,
        } = k
        else {
            return Err(invalid("not an index_add".into()));
        };
        let o = self.need(*out, rows * dim, DType::F32, "index_add target")?;
        let s = self.need(*src, n * dim, DType::F32, "index_add src")?;
        let (_, input) = self.ids(*ids, *n, "index_add ids")?;
        let aux = self.new_scratch(4 * segments::segments_len(*n));
        self.steps.push(Step::Host(HostPrep::Segments {
            input,
            n: *n,
            rows: *rows,
            aux,
        }));
        let scale = (f64::from_bits(*scale) as f32).to_bits();
        let p = words(&[
            u32_of(*rows, "rows")?,
            u32_of(*dim, "dim")?,
            u32_of(*n, "n")?,
            scale,
        ]);
        let mut binds = vec![o, Bind::Params, s, Bind::Buf(Buf::Scratch(aux))];
        if let Some(f) = factor {
            binds.push(self.need(*f, 1, DType::F32, "index_add factor")?);
        }
        self.dispatch(
            KernelId::IndexAdd {
                factor: factor.is_some(),
            },
            binds,
            p,
            ((n * dim) as u64).div_ceil(64),
        )
    }

    fn softmax_xent(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::SoftmaxXent {
            logits,
            labels,
            batch,
            classes,
            out,
        } = k
        else {
            return Err(invalid("not a softmax_xent".into()));
        };
        let o = Bind::Buf(self.out(*out, 1, "softmax_xent")?);
        let x = self.need(*logits, batch * classes, DType::F32, "softmax_xent logits")?;
        let (l, input) = self.ids(*labels, *batch, "softmax_xent labels")?;
        self.steps.push(Step::Host(HostPrep::CheckIds {
            input,
            n: *batch,
            bound: *classes,
        }));
        let rows = Bind::Buf(Buf::Scratch(self.new_scratch(4 * batch)));
        let p = words(&[u32_of(*batch, "batch")?, u32_of(*classes, "classes")?, 0, 0]);
        let (id, groups) = self.softmax_kernel(SoftmaxKind::XentRows, *batch, *classes);
        self.dispatch(id, vec![rows, Bind::Params, x, l], p, groups)?;
        self.mean_all(o, rows, *batch)
    }

    fn softmax_xent_grad(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::SoftmaxXentGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            out,
        } = k
        else {
            return Err(invalid("not a softmax_xent_grad".into()));
        };
        let o = Bind::Buf(self.out(*out, batch * classes, "softmax_xent_grad")?);
        let x = self.need(
            *logits,
            batch * classes,
            DType::F32,
            "softmax_xent_grad logits",
        )?;
        let (l, input) = self.ids(*labels, *batch, "softmax_xent_grad labels")?;
        let g = self.need(*grad, 1, DType::F32, "softmax_xent_grad grad")?;
        self.steps.push(Step::Host(HostPrep::CheckIds {
            input,
            n: *batch,
            bound: *classes,
        }));
        let p = words(&[u32_of(*batch, "batch")?, u32_of(*classes, "classes")?, 0, 0]);
        let (id, groups) = self.softmax_kernel(SoftmaxKind::XentGrad, *batch, *classes);
        self.dispatch(id, vec![o, Bind::Params, x, l, g], p, groups)
    }

    /// The loss and its gradient from one pass over the logits (the
    /// gradient and per-row losses), then the mean of the row losses.
    fn softmax_xent_with_grad(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::SoftmaxXentWithGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            out,
            grad_out,
        } = k
        else {
            return Err(invalid("not a softmax_xent_with_grad".into()));
        };
        let what = "softmax_xent_with_grad";
        let o = Bind::Buf(self.out(*out, 1, what)?);
        let og = Bind::Buf(self.out(*grad_out, batch * classes, what)?);
        if o == og {
            return Err(invalid(format!(
                "{what} writes its two outputs to one buffer"
            )));
        }
        let x = self.need(*logits, batch * classes, DType::F32, "softmax_xent logits")?;
        let (l, input) = self.ids(*labels, *batch, "softmax_xent labels")?;
        let g = self.need(*grad, 1, DType::F32, "softmax_xent grad")?;
        self.steps.push(Step::Host(HostPrep::CheckIds {
            input,
            n: *batch,
            bound: *classes,
        }));
        let rows = Bind::Buf(Buf::Scratch(self.new_scratch(4 * batch)));
        let p = words(&[u32_of(*batch, "batch")?, u32_of(*classes, "classes")?, 0, 0]);
        let (id, groups) = self.softmax_kernel(SoftmaxKind::XentBoth, *batch, *classes);
        self.dispatch(id, vec![og, Bind::Params, x, l, g, rows], p, groups)?;
        self.mean_all(o, rows, *batch)
    }

    fn log_softmax(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::LogSoftmax {
            input,
            rows,
            cols,
            out,
        } = k
        else {
            return Err(invalid("not a log_softmax".into()));
        };
        let o = Bind::Buf(self.out(*out, rows * cols, "log_softmax")?);
        let x = self.need(*input, rows * cols, DType::F32, "log_softmax input")?;
        let p = words(&[u32_of(*rows, "rows")?, u32_of(*cols, "cols")?, 0, 0]);
        let (id, groups) = self.softmax_kernel(SoftmaxKind::LogSoftmax, *rows, *cols);
        self.dispatch(id, vec![o, Bind::Params, x], p, groups)
    }

    fn logistic_loss(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::LogisticLoss {
            logits,
            targets,
            n,
            out,
        } = k
        else {
            return Err(invalid("not a logistic_loss".into()));
        };
        let o = Bind::Buf(self.out(*out, 1, "logistic_loss")?);
        let x = self.need(*logits, *n, DType::F32, "logistic_loss logits")?;
        let t = self.need(*targets, *n, DType::F32, "logistic_loss targets")?;
        let p = words(&[u32_of(*n, "n")?, 0, 0, 0]);
        self.dispatch(KernelId::LogisticLoss, vec![o, Bind::Params, x, t], p, 1)
    }

    fn logistic_grad(&mut self, k: &Kernel) -> Result<()> {
        let Kernel::LogisticLossGrad {
            logits,
            targets,
            grad,
            n,
            out,
        } = k
        else {
            return Err(invalid("not a logistic_grad".into()));
        };
        let o = Bind::Buf(self.out(*out, *n, "logistic_loss_grad")?);
        let x = self.need(*logits, *n, DType::F32, "logistic_loss_grad logits")?;
        let t = self.need(*targets, *n, DType::F32, "logistic_loss_grad targets")?;
        let g = self.need(*grad, 1, DType::F32, "logistic_loss_grad grad")?;
        let p = words(&[u32_of(*n, "n")?, 0, 0, 0]);
        self.dispatch(
            KernelId::LogisticGrad,
            vec![o, Bind::Params, x, t, g],
            p,
            (*n as u64).div_ceil(64),
        )
    }

    fn custom(&mut self, li: usize, k: &Kernel) -> Result<()> {
        let Kernel::Custom { out, .. } = k else {
            return Err(invalid("not a custom".into()));
        };
        if self.slot(*out)?.dtype != DType::F32 {
            return Err(invalid(
                "custom op output must be f32 on the wgpu backend".into(),
            ));
        }
        self.steps.push(Step::Custom(li));
        Ok(())
    }
}
