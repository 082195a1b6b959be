/** The MedCLIP dual encoder in onnxruntime: image and text towers, tokenizer, class prompts, findings mode, embedding pipeline. The only way in from outside this folder. */
export * from './embed-images.ts';
export * from './findings.ts';
export * from './medclip-model.ts';
export * from './prompts.ts';
export * from './tokenizer.ts';
export * from './model-card.ts';
export * from './import-model.ts';
