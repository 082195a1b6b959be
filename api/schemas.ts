/**
 * Request and response schemas (zod): they validate requests and generate the OpenAPI 3.1 document. JSON bodies
 * are validated by the route itself (`c.req.valid`); the image routes' other fields, which may arrive as a query
 * string, form fields or JSON, by the schemas of api/image-fields.ts built from these.
 */
import { MAX_HITS } from '../core/util/index.ts';
import { z } from '@hono/zod-openapi';
import { OBSERVATIONS } from '../core/labeler/index.ts';
import { MAX_PROMPTS_PER_CLASS, MAX_PROMPT_LENGTH } from '../core/model/index.ts';

export const MAX_K = MAX_HITS;
export const MAX_QUERY_LENGTH = 1000;

export const Finding = z.enum(OBSERVATIONS).openapi({ description: 'One of the 14 CheXpert observations' });

export const Filter = z
  .object({
    must: z.array(Finding).max(14).optional().openapi({ description: 'Findings that must be positive' }),
    mustNot: z.array(Finding).max(14).optional().openapi({ description: 'Findings that must not be positive' }),
    view: z.array(z.string().min(1).max(40)).max(20).optional().openapi({ description: 'Allowed views, e.g. PA, AP' }),
    source: z.array(z.string().min(1).max(40)).max(20).optional().openapi({ description: 'Allowed sources' }),
  })
  .strict()
  .openapi('Filter');

export const Target = z.enum(['images', 'reports']).openapi({ description: 'What to retrieve' });
export const K = z
  .number()
  .int()
  .min(1)
  .max(MAX_K)
  .default(10)
  .openapi({ description: `Number of hits (1-${MAX_K})` });

export const TextSearchRequest = z
  .object({
    query: z.string().trim().min(1).max(MAX_QUERY_LENGTH).openapi({ example: 'right lower lobe pneumonia' }),
    target: Target.default('images'),
    k: K,
    filter: Filter.optional(),
  })
  .strict()
  .openapi('TextSearchRequest');

export const ImageJson = z
  .object({
    image: z.string().min(1).openapi({ description: 'The X-ray (PNG, JPEG or DICOM), base64-encoded' }),
    target: Target.default('reports'),
    k: K,
    filter: Filter.optional(),
  })
  .strict()
  .openapi('ImageSearchRequest');

export const PreviewJson = z
  .object({ image: z.string().min(1).openapi({ description: 'The X-ray (PNG, JPEG or DICOM), base64-encoded' }) })
  .strict()
  .openapi('PreviewRequest');

export const CustomClass = z
  .object({
    name: z.string().trim().min(1).max(80),
    prompts: z.array(z.string().trim().min(1).max(MAX_PROMPT_LENGTH)).min(1).max(MAX_PROMPTS_PER_CLASS),
  })
  .strict();

export const ClassList = z
  .array(z.union([z.string().min(1).max(80), CustomClass]))
  .min(2)
  .max(20);

export const ClassifyMode = z.enum(['exclusive', 'findings']).openapi({
  description:
    "exclusive: softmax over the classes (they compete); findings: each observation's own probability of being present (multi-label)",
});

export const ClassifyJson = z
  .object({
    image: z.string().min(1).openapi({ description: 'The X-ray, base64-encoded' }),
    mode: ClassifyMode.optional().openapi({ description: 'default exclusive' }),
    classes: ClassList.optional().openapi({
      description:
        'exclusive: built-in class names or { name, prompts[] }, default the built-in classes; findings: observation names (case-insensitive), default all 14',
    }),
  })
  .strict()
  .openapi('ClassifyRequest');

export const Labels = z.record(z.string(), z.union([z.literal(1), z.literal(0), z.literal(-1)])).openapi('Labels', {
  description: 'Observation -> 1 positive, 0 negative, -1 uncertain (unmentioned left out)',
});

export const DicomUids = z
  .object({ study: z.string(), series: z.string(), instance: z.string() })
  .openapi('DicomUids', { description: 'Study, Series and SOP Instance UIDs of an item read from DICOM (a PACS or DICOM files)' });

export const ImageHit = z
  .object({
    id: z.string(),
    score: z.number(),
    labels: Labels,
    matched: z.array(z.string()).openapi({ description: 'Findings the hit shares with the query' }),
    view: z.string().optional(),
    source: z.string().optional(),
    thumbnail: z.string().optional().openapi({ description: 'URL of a preview image' }),
    dicom: DicomUids.optional(),
    viewerUrl: z
      .string()
      .optional()
      .openapi({ description: 'the study in the configured DICOM viewer (MEDCLIP_VIEWER_URL / --viewer-url)' }),
    studyReport: z.string().optional().openapi({ description: "id of the indexed report of this image's study (from the archive's SR)" }),
    labelSource: z.enum(['table', 'report']).optional().openapi({
      description: "where `labels` come from: the image table (or DICOM), or the image's own report when the image has no labels",
    }),
    evidence: z
      .object({ reportId: z.string(), sentence: z.object({ index: z.number().int(), text: z.string() }) })
      .optional()
      .openapi({
        description:
          "text queries over images paired with their reports: the sentence of this image's own report that made it relevant (report-mediated search)",
      }),
    relevance: z.number().min(0).max(1).optional().openapi({
      description:
        "with evidence: the calibrated relevance of the image's report to the query (hits with evidence come first, in this order)",
    }),
  })
  .openapi('ImageHit');

export const ReportHit = z
  .object({
    id: z.string(),
    score: z.number().openapi({ description: 'cosine similarity of the query and the sentence (raw)' }),
    relevance: z.number().min(0).max(1).optional().openapi({
      description: 'text queries that name a finding: the probability that this report is relevant, calibrated on judged val queries',
    }),
    labels: Labels,
    matched: z.array(z.string()),
    sentence: z
      .object({
        index: z.number().int(),
        text: z.string(),
        reports: z.number().int().openapi({ description: 'how many indexed reports hold this exact sentence' }),
      })
      .openapi({ description: 'The sentence that matched best' }),
    modifiers: z
      .array(z.string())
      .optional()
      .openapi({ description: "the query's modifiers the matched sentence states too", example: ['right', 'large'] }),
    collapsed: z.array(z.string()).openapi({
      description: 'other reports in the results whose best sentence was this same text, folded into this hit (ids)',
    }),
    report: z.record(z.string(), z.string()).openapi({ description: 'The report text fields' }),
    dicom: DicomUids.optional(),
    viewerUrl: z.string().optional().openapi({ description: "the report's study in the configured DICOM viewer" }),
  })
  .openapi('ReportHit');

export const SearchResponse = z
  .object({
    target: Target,
    query: z
      .object({
        findings: z
          .array(
            z.object({
              name: z.string(),
              polarity: z.enum(['positive', 'negative', 'uncertain']),
              validated: z.boolean().optional().openapi({
                description:
                  "image queries: whether the model card validates this finding (held-out AUC interval above the card's threshold); only validated findings rank and filter",
              }),
              auc: z
                .number()
                .optional()
                .openapi({ description: "image queries: the finding's pooled held-out ROC AUC from the model card" }),
            }),
          )
          .openapi({
            description:
              'the findings the query states, with polarity ("no pneumothorax": Pneumothorax, negative); for an X-ray, those its findings mode reads, each saying whether the model is validated for it',
          }),
        modifiers: z
          .object({
            side: z.array(z.string()).optional(),
            extent: z.array(z.string()).optional(),
            change: z.array(z.string()).optional(),
            location: z.array(z.string()).optional(),
          })
          .optional()
          .openapi({
            description:
              'text queries: the side (left, right, bilateral), extent (small, mild, moderate, large, severe), change (new, increased, decreased, stable, resolved) and location (upper/middle/lower lobe, base, apex, lingula, retrocardiac, perihilar) the query states; report sentences that agree rank first, contradicting ones last',
            example: { side: ['right'], extent: ['large'] },
          }),
        corrected: z
          .string()
          .optional()
          .openapi({ description: 'text queries: the query as searched, after spelling correction', example: 'pneumonia' }),
        warnings: z.array(z.string()).optional().openapi({ description: 'e.g. no known term recognised: hits are by similarity only' }),
      })
      .openapi({ description: 'Findings read from the query (labeler for text, findings mode for images), and how the query was read' }),
    hits: z.array(z.union([ImageHit, ReportHit])),
    tookMs: z.number(),
  })
  .openapi('SearchResponse');

export const ClassifyResponse = z
  .object({
    mode: ClassifyMode,
    classes: z.array(
      z.object({
        name: z.string(),
        probability: z.number(),
        validated: z.boolean().openapi({
          description:
            "whether the model card validates this finding (held-out AUC interval above the card's threshold); an unvalidated probability means nothing yet",
        }),
        auc: z.number().optional().openapi({ description: "the finding's pooled held-out ROC AUC, from the model card" }),
      }),
    ),
    tookMs: z.number(),
  })
  .openapi('ClassifyResponse');

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    requestId: z.string().optional(),
  })
  .openapi('Problem');

export const Health = z
  .object({
    status: z.literal('ok'),
    model: z.object({ name: z.string(), sha256: z.string(), embedDim: z.number() }),
    index: z.object({ version: z.number(), images: z.number(), reports: z.number(), sentences: z.number() }),
  })
  .openapi('Health');

const FacetValue = z.object({ value: z.string(), count: z.number().int() });

export const Facets = z
  .object({
    images: z.number().int().openapi({ description: 'Live images in the index' }),
    views: z.array(FacetValue).openapi({ description: 'Views stored with the images (filter.view), most frequent first' }),
    sources: z.array(FacetValue).openapi({ description: 'Sources stored with the images (filter.source)' }),
    findings: z
      .array(z.object({ name: z.string(), count: z.number().int() }))
      .openapi({ description: 'Every observation with its count of positive images (filter.must / mustNot), most frequent first' }),
  })
  .openapi('Facets');
