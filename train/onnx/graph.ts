/**
 * A small ONNX graph builder over the `onnx-proto` message types: initializers, nodes with typed attributes,
 * inputs/outputs with symbolic dimensions, serialised to a ModelProto. No JS converter from tfjs to ONNX
 * exists, so the exporter writes each layer's ONNX form itself.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const ELEM = { float: 1, int64: 7 } as const;
export type ElemType = (typeof ELEM)[keyof typeof ELEM];

export type Attribute = { i: number } | { f: number } | { ints: number[] } | { s: string };

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private counter = 0;
  private readonly names = new Set<string>();

  constructor(readonly name: string) {}

  private fresh(hint: string): string {
    let n = `${hint}_${this.counter++}`;
    while (this.names.has(n)) n = `${hint}_${this.counter++}`;
    return n;
  }

  /** A float32 or int64 constant tensor, stored as an initializer. */
  initializer(name: string, data: Float32Array | BigInt64Array, dims: number[]): string {
    if (this.names.has(name)) throw new Error(`duplicate tensor name ${name}`);
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`initializer ${name}: ${data.length} values for dims [${dims}]`);
    this.names.add(name);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({
      name,
      dims,
      dataType: data instanceof Float32Array ? ELEM.float : ELEM.int64,
      rawData: Uint8Array.from(bytes), // little-endian, as ONNX raw_data requires (this host is LE)
    });
    return name;
  }

  float(values: number[] | Float32Array, dims?: number[], hint = 'const'): string {
    const data = Float32Array.from(values);
    return this.initializer(this.fresh(hint), data, dims ?? [data.length]);
  }

  int64(values: number[], dims?: number[], hint = 'const_i64'): string {
    return this.initializer(this.fresh(hint), BigInt64Array.from(values.map(BigInt)), dims ?? [values.length]);
  }

  input(name: string, elemType: ElemType, dims: (number | string)[]): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: ElemType, dims: (number | string)[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** Add a node; returns its output names (one unless `outputs` says otherwise). */
  node(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}, outputs: number | string[] = 1): string[] {
    const outNames = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : outputs;
    for (const o of outNames) this.names.add(o);
    this.nodes.push({
      opType,
      input: inputs,
      output: outNames,
      name: this.fresh(`${opType}_node`),
      attribute: Object.entries(attrs).map(([name, a]) => attribute(name, a)),
    });
    return outNames;
  }

  op(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}): string {
    return this.node(opType, inputs, attrs)[0]!;
  }

  /** Serialise as a ModelProto (IR version 8, the given opset of the default domain). */
  toBytes(opset: number, docString = ''): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'medclip-search',
      producerVersion: '1',
      docString,
      opsetImport: [{ domain: '', version: opset }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, elemType: ElemType, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function attribute(name: string, a: Attribute): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: a.i };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints };
  return { name, type: T.STRING, s: new TextEncoder().encode(a.s) };
}
