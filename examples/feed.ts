// A typed client of the gql_blog API: the types come from `npm run codegen` (generated/), so
// `tsc --noEmit` fails as soon as an operation in operations/ no longer fits schema.graphql.
import type {
  CreatePostMutation,
  CreatePostMutationVariables,
  FeedPostFragment,
  FeedQuery,
  FeedQueryVariables,
  SignInMutation,
  SignInMutationVariables,
} from "./generated/operations";

type GraphQLResponse<TData> = {
  data?: TData | null;
  errors?: { message: string; extensions?: { code?: string } }[];
};

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** POST an operation; its hash rides along, so the server registers it for GET reads. */
export async function post<TData, TVariables>(
  url: string,
  query: string,
  variables: TVariables,
  token?: string,
): Promise<TData> {
  const persistedQuery = { version: 1, sha256Hash: await sha256Hex(query) };
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables, extensions: { persistedQuery } }),
  });
  return dataOf<TData>(await response.json());
}

/** A read by hash alone, over GET, so a CDN may cache it; resent with its text when unknown. */
export async function persistedGet<TData, TVariables>(
  url: string,
  query: string,
  variables: TVariables,
): Promise<TData> {
  const persistedQuery = { version: 1, sha256Hash: await sha256Hex(query) };
  const params = new URLSearchParams({
    extensions: JSON.stringify({ persistedQuery }),
    variables: JSON.stringify(variables),
  });
  const body = (await (await fetch(`${url}?${params}`)).json()) as GraphQLResponse<TData>;
  if (body.errors?.some((error) => error.extensions?.code === "PERSISTED_QUERY_NOT_FOUND")) {
    return post<TData, TVariables>(url, query, variables);
  }
  return dataOf(body);
}

function dataOf<TData>(body: GraphQLResponse<TData>): TData {
  if (body.errors?.length || !body.data) {
    throw new Error(body.errors?.map((error) => error.message).join("; ") ?? "no data");
  }
  return body.data;
}

export async function signIn(url: string, variables: SignInMutationVariables, query: string) {
  const { login } = await post<SignInMutation, SignInMutationVariables>(url, query, variables);
  if (login.__typename !== "AuthPayload") {
    throw new Error(`${login.__typename}: ${login.message}`);
  }
  return login.token;
}

export async function createPost(
  url: string,
  token: string,
  variables: CreatePostMutationVariables,
  query: string,
): Promise<string> {
  const { createPost: result } = await post<CreatePostMutation, CreatePostMutationVariables>(
    url,
    query,
    variables,
    token,
  );
  if (result.__typename !== "Post") {
    throw new Error(`${result.__typename}: ${result.message}`);
  }
  return result.id;
}

export function feedLine(item: FeedPostFragment): string {
  const author = item.author.fullName ?? item.author.username;
  const tags = item.tags.map((tag) => `#${tag.name}`).join(" ");
  return `${item.title} by ${author} (${item.comments.totalCount} comments) ${tags}`.trim();
}

export async function feed(url: string, query: string, variables: FeedQueryVariables = {}) {
  const { posts } = await persistedGet<FeedQuery, FeedQueryVariables>(url, query, variables);
  return { lines: posts.nodes.map(feedLine), next: posts.pageInfo.endCursor };
}
